package transport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// needTool finds a program; outside CI a missing one skips the test, in CI
// (CI=true) it fails it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (CI=true): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// writePEMs writes id's chain and key for openssl and curl.
func writePEMs(t testing.TB, id *Identity) (leaf, chain, ca, key string) {
	t.Helper()
	dir := t.TempDir()
	leaf, chain, ca, key = filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "chain.pem"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "key.pem")
	keyPEM, err := marshalKey(id.Cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, caPEM := pemCert(id.Cert.Certificate[0]), pemCert(id.CA.Raw)
	for p, b := range map[string][]byte{leaf: leafPEM, chain: append(append([]byte{}, leafPEM...), caPEM...), ca: caPEM, key: keyPEM} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return leaf, chain, ca, key
}

var cipherIsRE = regexp.MustCompile(`New, (\S+), Cipher is (\S+)`)

// sClient runs openssl s_client with args, sends a GET /v1/hello and
// returns the negotiated version, cipher and whether an HTTP 200 came back.
func sClient(t *testing.T, openssl, addr string, args ...string) (version, cipher string, ok200 bool, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all := append([]string{"s_client", "-connect", addr, "-ign_eof", "-alpn", "http/1.1"}, args...)
	cmd := exec.CommandContext(ctx, openssl, all...)
	cmd.Stdin = strings.NewReader("GET /v1/hello HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	_ = cmd.Run() // a refused handshake exits non-zero; judged from the output
	out = buf.String()
	if m := cipherIsRE.FindStringSubmatch(out); m != nil {
		version, cipher = m[1], m[2]
	}
	return version, cipher, strings.Contains(out, "HTTP/1.1 200 OK"), out
}

func TestOpenSSLPolicy(t *testing.T) {
	openssl := needTool(t, "openssl")
	S, C, U := newTestIdentity(t, "S"), newTestIdentity(t, "C"), newTestIdentity(t, "U")
	_, addr := startServer(t, Options{Identity: S, Pins: NewPins(C.ID), Logger: testLogger(t)}, helloHandler(S))
	leaf, _, ca, key := writePEMs(t, C)
	uLeaf, _, uCA, uKey := writePEMs(t, U)
	cert := []string{"-cert", leaf, "-cert_chain", ca, "-key", key}

	tests := []struct {
		name    string
		args    []string
		ok      bool   // HTTP 200 expected
		version string // when ok
		cipher  string // when ok; a regexp
		noCert  bool   // do not add C's certificate
	}{
		{name: "TLS1.2 CBC refused", args: []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-SHA"}},
		{name: "TLS1.2 ChaCha20 refused", args: []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"}},
		{name: "TLS1.2 static RSA refused", args: []string{"-tls1_2", "-cipher", "AES256-GCM-SHA384:AES128-GCM-SHA256"}},
		{name: "TLS1.2 DHE refused", args: []string{"-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"}},
		{name: "TLS1.2 ECDHE-RSA refused", args: []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"}},
		{name: "TLS1.1 refused", args: []string{"-tls1_1", "-cipher", "ALL:@SECLEVEL=0"}},
		{name: "TLS1.3 ChaCha20 only refused", args: []string{"-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"}},
		{name: "TLS1.3 only preferring ChaCha20 refused", args: []string{"-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"}},
		{name: "TLS1.3 P-384 only refused", args: []string{"-tls1_3", "-groups", "P-384"}},
		{name: "TLS1.2 ffdhe only refused", args: []string{"-tls1_2", "-groups", "ffdhe2048"}},
		{name: "preferring ChaCha20 ends on AES-GCM", args: []string{"-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"}, ok: true, version: "TLSv1.2", cipher: `^ECDHE-ECDSA-AES(128|256)-GCM-SHA(256|384)$`},
		{name: "TLS1.3 AES128-GCM", args: []string{"-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"}, ok: true, version: "TLSv1.3", cipher: `^TLS_AES_128_GCM_SHA256$`},
		{name: "TLS1.3 AES256-GCM", args: []string{"-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"}, ok: true, version: "TLSv1.3", cipher: `^TLS_AES_256_GCM_SHA384$`},
		{name: "TLS1.3 default", args: nil, ok: true, version: "TLSv1.3", cipher: `^TLS_AES_(128_GCM_SHA256|256_GCM_SHA384)$`},
		{name: "TLS1.3 X25519", args: []string{"-tls1_3", "-groups", "X25519"}, ok: true, version: "TLSv1.3", cipher: `^TLS_AES_`},
		{name: "TLS1.3 P-256", args: []string{"-tls1_3", "-groups", "P-256"}, ok: true, version: "TLSv1.3", cipher: `^TLS_AES_`},
		{name: "TLS1.2 ECDHE-ECDSA-AES256-GCM", args: []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"}, ok: true, version: "TLSv1.2", cipher: `^ECDHE-ECDSA-AES256-GCM-SHA384$`},
		{name: "TLS1.2 ECDHE-ECDSA-AES128-GCM", args: []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}, ok: true, version: "TLSv1.2", cipher: `^ECDHE-ECDSA-AES128-GCM-SHA256$`},
		{name: "no client cert TLS1.3", args: []string{"-tls1_3"}, noCert: true},
		{name: "no client cert TLS1.2", args: []string{"-tls1_2"}, noCert: true},
		{name: "unpinned cert", args: []string{"-cert", uLeaf, "-cert_chain", uCA, "-key", uKey}, noCert: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !tc.noCert {
				args = append(append([]string{}, cert...), args...)
			}
			version, cipher, ok, out := sClient(t, openssl, addr, args...)
			if ok != tc.ok {
				t.Fatalf("s_client %v: HTTP 200 = %v, want %v (negotiated %s %s)\n%s", tc.args, ok, tc.ok, version, cipher, out)
			}
			if !tc.ok {
				// Refused, but for the right reason: openssl did connect.
				if !strings.Contains(out, "CONNECTED(") {
					t.Fatalf("s_client %v did not connect at all:\n%s", tc.args, out)
				}
				return
			}
			if version != tc.version || !regexp.MustCompile(tc.cipher).MatchString(cipher) {
				t.Errorf("s_client %v: negotiated %s %s, want %s %s", tc.args, version, cipher, tc.version, tc.cipher)
			}
		})
	}
}

// TestOpenSSLScan tries every TLS 1.2 suite openssl knows, one at a time, as
// an external scanner would: only the two ECDHE-ECDSA-AES-GCM suites may
// complete a handshake.
func TestOpenSSLScan(t *testing.T) {
	openssl := needTool(t, "openssl")
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	_, addr := startServer(t, Options{Identity: S, Pins: NewPins(C.ID)}, helloHandler(S))
	leaf, _, ca, key := writePEMs(t, C)
	out, err := exec.Command(openssl, "ciphers", "-tls1_2", "ALL:COMPLEMENTOFALL:@SECLEVEL=0").Output()
	if err != nil {
		t.Fatalf("openssl ciphers: %v", err)
	}
	var suites []string
	for _, s := range strings.Split(strings.TrimSpace(string(out)), ":") {
		if !strings.HasPrefix(s, "TLS_") { // TLS 1.3 names are covered above
			suites = append(suites, s)
		}
	}
	if len(suites) < 20 {
		t.Fatalf("openssl ciphers gave %d TLS 1.2 suites, want a full list: %s", len(suites), out)
	}
	allowed := map[string]bool{"ECDHE-ECDSA-AES128-GCM-SHA256": true, "ECDHE-ECDSA-AES256-GCM-SHA384": true}
	var mu sync.Mutex
	accepted := map[string]bool{}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, s := range suites {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, cipher, _, _ := sClient(t, openssl, addr, "-tls1_2", "-cipher", s+":@SECLEVEL=0", "-cert", leaf, "-cert_chain", ca, "-key", key)
			if cipher != "" && cipher != "(NONE)" {
				mu.Lock()
				accepted[cipher] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for c := range accepted {
		if !allowed[c] {
			t.Errorf("Scan() accepted %s, want only %v", c, allowed)
		}
	}
	for c := range allowed {
		if !accepted[c] {
			t.Errorf("Scan() refused %s, want accepted", c)
		}
	}
	t.Logf("scanned %d TLS 1.2 suites; accepted %v", len(suites), accepted)
}

func TestCurlHello(t *testing.T) {
	curl := needTool(t, "curl")
	S, C, U := newTestIdentity(t, "S"), newTestIdentity(t, "C"), newTestIdentity(t, "U")
	_, addr := startServer(t, Options{Identity: S, Pins: NewPins(C.ID)}, helloHandler(S))
	_, chain, _, key := writePEMs(t, C)
	_, uChain, _, uKey := writePEMs(t, U)
	url := "https://" + addr + "/v1/hello"
	tests := []struct {
		name     string
		args     []string
		wantCode string
		wantBody string
	}{
		{"pinned", []string{"--cert", chain, "--key", key, url}, "200", C.ID.String()},
		{"pinned HTTP/1.1", []string{"--http1.1", "--cert", chain, "--key", key, url}, "200", C.ID.String()},
		{"unpinned", []string{"--cert", uChain, "--key", uKey, url}, "000", ""},
		{"no cert", []string{url}, "000", ""},
		{"plain HTTP", []string{"http://" + addr + "/v1/hello"}, "000", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append([]string{"-sS", "-k", "--max-time", "10", "-w", "\n%{http_code}"}, tc.args...)
			out, _ := exec.CommandContext(ctx, curl, args...).CombinedOutput()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			code := lines[len(lines)-1]
			if code != tc.wantCode {
				t.Fatalf("curl %v: code %s, want %s\n%s", tc.args, code, tc.wantCode, out)
			}
			if tc.wantBody != "" && !strings.Contains(string(out), tc.wantBody) {
				t.Errorf("curl %v: body %s, want it to contain %s", tc.args, out, tc.wantBody)
			}
		})
	}
}
