package transport

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"
)

// testNow is the clock of every test identity.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

// newTestIdentity creates an identity in a temp dir.
func newTestIdentity(t testing.TB, name string) *Identity {
	t.Helper()
	id, err := CreateIdentity(t.TempDir(), name, testNow)
	if err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	return id
}

// testLogger logs to the test at debug level when -v is given.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// helloHandler answers /v1/hello with the caller's device ID.
func helloHandler(self *Identity) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/hello", func(w http.ResponseWriter, r *http.Request) {
		id, ok := RequestPeer(r)
		if !ok {
			http.Error(w, "no peer", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"device": self.ID.String(), "caller": id.String(), "proto": r.Proto})
	})
	return mux
}

// startServer runs a Server on 127.0.0.1 and stops it at cleanup.
func startServer(t testing.TB, o Options, h http.Handler) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(o, h)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve() = %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// tryHello dials addr with conf, sends GET /v1/hello over HTTP/1.1 and
// returns the connection state and the caller ID the server saw.
func tryHello(addr string, conf *tls.Config) (tls.ConnectionState, string, error) {
	if !slices.Contains(conf.NextProtos, ProtoPair) {
		conf = conf.Clone()
		conf.NextProtos = []string{ProtoHTTP1}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return tls.ConnectionState{}, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cs := c.ConnectionState()
	if _, err := io.WriteString(c, "GET /v1/hello HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n"); err != nil {
		return cs, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return cs, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cs, "", fmt.Errorf("status %s", resp.Status)
	}
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return cs, "", err
	}
	return cs, body["caller"], nil
}

// leafOpts tweaks a hand-made leaf.
type leafOpts struct {
	eku       []x509.ExtKeyUsage
	notBefore time.Time
	notAfter  time.Time
	curve     elliptic.Curve
}

// makeLeaf signs a leaf with id's CA key and returns id's chain with it.
func makeLeaf(t testing.TB, id *Identity, lo leafOpts) tls.Certificate {
	t.Helper()
	if lo.curve == nil {
		lo.curve = elliptic.P256()
	}
	if lo.eku == nil {
		lo.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if lo.notBefore.IsZero() {
		lo.notBefore = testNow.Add(-time.Hour)
	}
	if lo.notAfter.IsZero() {
		lo.notAfter = testNow.Add(LeafLifetime)
	}
	key, err := ecdsa.GenerateKey(lo.curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "test leaf"},
		NotBefore:    lo.notBefore,
		NotAfter:     lo.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  lo.eku,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, id.CA, key.Public(), id.caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, id.CA.Raw}, PrivateKey: key, Leaf: leaf}
}

// withCert returns a copy of id presenting cert.
func withCert(id *Identity, cert tls.Certificate) *Identity {
	return &Identity{ID: id.ID, Name: id.Name, CA: id.CA, Cert: cert, caKey: id.caKey, dir: id.dir}
}

// listenLocal listens on a free 127.0.0.1 port.
func listenLocal(t testing.TB) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().String()
}

// TestRenewalKeepsSkewedPeer: a pinned peer whose clock runs 2 hours
// behind accepts the device before and after it renews its leaf (the
// renewed leaf is valid from when the old one was).
func TestRenewalKeepsSkewedPeer(t *testing.T) {
	s, c := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	renewAt := testNow.Add(LeafLifetime - 20*24*time.Hour) // within 30 days of expiry
	peerClock := renewAt.Add(-2 * time.Hour)
	_, addr := startServer(t, Options{Identity: s, Pins: NewPins(c.ID), Now: fixedNow(renewAt)}, helloHandler(s))
	cli := ClientTLSConfig(Options{Identity: c, Pins: NewPins(s.ID), Now: fixedNow(peerClock)}, s.ID)
	if _, _, err := tryHello(addr, cli); err != nil {
		t.Fatalf("before the renewal: %v", err)
	}
	if ok, err := s.RenewIfNeeded(renewAt, 30*24*time.Hour); !ok || err != nil {
		t.Fatalf("RenewIfNeeded = %v, %v", ok, err)
	}
	if _, _, err := tryHello(addr, cli); err != nil {
		t.Fatalf("after the renewal, the peer whose clock is 2 h behind refuses: %v", err)
	}
	if got := s.Certificate().Leaf.NotAfter; !got.After(renewAt.Add(LeafLifetime - time.Hour)) {
		t.Errorf("renewed leaf ends %v", got)
	}
}
