package transport

import (
	"context"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// TestHandshakeMatrix drives Go clients against a Server. S is the server
// device, C the client, D a third device (pinned by both), U an unknown one.
func TestHandshakeMatrix(t *testing.T) {
	S, C, D, U := newTestIdentity(t, "S"), newTestIdentity(t, "C"), newTestIdentity(t, "D"), newTestIdentity(t, "U")
	srvPins := NewPins(C.ID, D.ID)
	srvOpts := Options{Identity: S, Pins: srvPins, Logger: testLogger(t), Now: fixedNow(testNow)}
	_, addr := startServer(t, srvOpts, helloHandler(S))
	// A second server whose clock is off, for the client-leaf validity cases.
	_, addrFuture := startServer(t, Options{Identity: S, Pins: srvPins, Now: fixedNow(testNow.Add(2 * LeafLifetime))}, helloHandler(S))
	_, addrPast := startServer(t, Options{Identity: S, Pins: srvPins, Now: fixedNow(testNow.Add(-30 * 24 * time.Hour))}, helloHandler(S))
	// A server presenting S's leaf with D's CA.
	mixed := withCert(S, tls.Certificate{Certificate: [][]byte{S.Cert.Certificate[0], D.CA.Raw}, PrivateKey: S.Cert.PrivateKey})
	_, addrMixed := startServer(t, Options{Identity: mixed, Pins: srvPins, Now: fixedNow(testNow)}, helloHandler(S))

	cliPins := NewPins(S.ID, D.ID)
	client := func(id *Identity, expect deviceid.ID, mod func(*tls.Config)) *tls.Config {
		c := ClientTLSConfig(Options{Identity: id, Pins: cliPins, Now: fixedNow(testNow)}, expect)
		if mod != nil {
			mod(c)
		}
		return c
	}
	present := func(certs ...[]byte) func(*tls.Config) {
		return func(c *tls.Config) {
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return &tls.Certificate{Certificate: certs, PrivateKey: C.Cert.PrivateKey}, nil
			}
		}
	}
	noSrvEKU := makeLeaf(t, C, leafOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	p384 := makeLeaf(t, C, leafOpts{curve: elliptic.P384()})

	tests := []struct {
		name     string
		addr     string
		conf     *tls.Config
		ok       bool
		version  uint16
		suite    uint16
		errMatch error // checked against the client's error when set
	}{
		{name: "pinned ok TLS1.3", addr: addr, conf: client(C, S.ID, nil), ok: true, version: tls.VersionTLS13, suite: tls.TLS_AES_128_GCM_SHA256},
		{name: "pinned ok TLS1.2", addr: addr, conf: client(C, S.ID, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }), ok: true, version: tls.VersionTLS12, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{name: "TLS1.2 AES256", addr: addr, conf: client(C, S.ID, func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
		}), ok: true, version: tls.VersionTLS12, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
		{name: "TLS1.2 ChaCha20 refused", addr: addr, conf: client(C, S.ID, func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
		})},
		{name: "TLS1.2 CBC refused", addr: addr, conf: client(C, S.ID, func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}
		})},
		{name: "TLS1.1 refused", addr: addr, conf: client(C, S.ID, func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 })},
		{name: "P-384 only key exchange refused", addr: addr, conf: client(C, S.ID, func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP384} })},
		{name: "P-256 key exchange ok", addr: addr, conf: client(C, S.ID, func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP256} }), ok: true, version: tls.VersionTLS13, suite: tls.TLS_AES_128_GCM_SHA256},
		{name: "unpinned client refused", addr: addr, conf: client(U, S.ID, nil)},
		{name: "no client cert refused", addr: addr, conf: client(C, S.ID, present())},
		{name: "leaf only refused", addr: addr, conf: client(C, S.ID, present(C.Cert.Certificate[0]))},
		{name: "extra certs refused", addr: addr, conf: client(C, S.ID, present(C.Cert.Certificate[0], C.CA.Raw, C.CA.Raw))},
		{name: "leaf with foreign pinned CA refused", addr: addr, conf: client(C, S.ID, present(C.Cert.Certificate[0], D.CA.Raw))},
		{name: "CA presented as leaf refused", addr: addr, conf: client(C, S.ID, present(C.CA.Raw, C.CA.Raw))},
		{name: "leaf without clientAuth refused", addr: addr, conf: client(withCert(C, noSrvEKU), S.ID, nil)},
		{name: "leaf on P-384 refused", addr: addr, conf: client(withCert(C, p384), S.ID, nil)},
		{name: "expired client leaf refused", addr: addrFuture, conf: client(C, S.ID, func(c *tls.Config) {
			c.VerifyConnection = nil // the client's own clock is not under test here
		})},
		{name: "not yet valid client leaf refused", addr: addrPast, conf: client(C, S.ID, func(c *tls.Config) { c.VerifyConnection = nil })},
		{name: "server not the dialled ID refused", addr: addr, conf: client(C, D.ID, nil), errMatch: ErrUnknownPeer},
		{name: "server not pinned refused", addr: addr, conf: ClientTLSConfig(Options{Identity: C, Pins: NewPins(D.ID), Now: fixedNow(testNow)}, S.ID), errMatch: ErrUnknownPeer},
		{name: "wrong CA for dialled ID refused", addr: addrMixed, conf: client(C, D.ID, nil), errMatch: ErrBadChain},
		{name: "expired server leaf refused", addr: addr, conf: ClientTLSConfig(Options{Identity: C, Pins: cliPins, Now: fixedNow(testNow.Add(2 * LeafLifetime))}, S.ID), errMatch: ErrBadChain},
		{name: "not yet valid server leaf refused", addr: addr, conf: ClientTLSConfig(Options{Identity: C, Pins: cliPins, Now: fixedNow(testNow.Add(-30 * 24 * time.Hour))}, S.ID), errMatch: ErrBadChain},
		{name: "pair ALPN while closed refused", addr: addr, conf: client(C, S.ID, func(c *tls.Config) { c.NextProtos = []string{ProtoPair} })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, caller, err := tryHello(tc.addr, tc.conf)
			if !tc.ok {
				if err == nil {
					t.Fatalf("Hello() succeeded (%s, %s, caller %s), want refused", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), caller)
				}
				t.Logf("refused: %v", err)
				if tc.errMatch != nil && !errors.Is(err, tc.errMatch) {
					t.Errorf("Hello() = %v, want %v", err, tc.errMatch)
				}
				return
			}
			if err != nil {
				t.Fatalf("Hello() = %v, want success", err)
			}
			if cs.Version != tc.version || cs.CipherSuite != tc.suite {
				t.Errorf("Negotiated() = %s %s, want %s %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), tls.VersionName(tc.version), tls.CipherSuiteName(tc.suite))
			}
			if caller != C.ID.String() {
				t.Errorf("RequestPeer() = %s, want %s", caller, C.ID)
			}
		})
	}
}

func TestPinsChangeWhileListening(t *testing.T) {
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	pins := NewPins()
	_, addr := startServer(t, Options{Identity: S, Pins: pins, Now: fixedNow(testNow)}, helloHandler(S))
	conf := ClientTLSConfig(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow)}, S.ID)
	if _, _, err := tryHello(addr, conf); err == nil {
		t.Fatalf("Hello() before Add succeeded, want refused")
	}
	pins.Add(C.ID)
	if _, _, err := tryHello(addr, conf); err != nil {
		t.Fatalf("Hello() after Add = %v, want success", err)
	}
	pins.Remove(C.ID)
	if _, _, err := tryHello(addr, conf); err == nil {
		t.Fatalf("Hello() after Remove succeeded, want refused")
	}
	pins.Set([]deviceid.ID{C.ID})
	if _, _, err := tryHello(addr, conf); err != nil {
		t.Fatalf("Hello() after Set = %v, want success", err)
	}
}

func TestPairing(t *testing.T) {
	S, C, U := newTestIdentity(t, "S"), newTestIdentity(t, "C"), newTestIdentity(t, "U")
	srv, addr := startServer(t, Options{Identity: S, Pins: NewPins(C.ID), Now: fixedNow(testNow)}, helloHandler(S))
	ctx := context.Background()
	uOpts := Options{Identity: U, Now: fixedNow(testNow)}

	if c, err := DialPair(ctx, uOpts, addr); err == nil {
		// TLS 1.3: the refusal may only show on the first read.
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("DialPair() while closed: read succeeded, want refused")
		}
		c.Close()
	}

	type got struct {
		id     deviceid.ID
		caID   deviceid.ID
		export []byte
	}
	gotc := make(chan got, 1)
	srv.SetPairHandler(func(conn *tls.Conn, peer *x509.Certificate, peerID deviceid.ID) {
		cs := conn.ConnectionState()
		ekm, _ := cs.ExportKeyingMaterial("syncd test", nil, 32)
		conn.Write([]byte("ok"))
		gotc <- got{id: peerID, caID: deviceid.FromPublicKeyInfo(peer.RawSubjectPublicKeyInfo), export: ekm}
	})
	c, err := DialPair(ctx, uOpts, addr)
	if err != nil {
		t.Fatalf("DialPair() while open = %v", err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("Read() = %q, %v, want ok", buf, err)
	}
	cs := c.ConnectionState()
	mine, _ := cs.ExportKeyingMaterial("syncd test", nil, 32)
	c.Close()
	g := <-gotc
	if g.id != U.ID || g.caID != U.ID {
		t.Errorf("PairHandler(peerID) = %s (CA %s), want %s", g.id.Short(), g.caID.Short(), U.ID.Short())
	}
	if string(g.export) != string(mine) {
		t.Errorf("ExportKeyingMaterial() differs between the ends")
	}

	// Pinned HTTP still reaches HTTP while pairing is open.
	if _, caller, err := tryHello(addr, ClientTLSConfig(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow)}, S.ID)); err != nil || caller != C.ID.String() {
		t.Errorf("Hello() while pairing open = %q, %v, want %s", caller, err, C.ID)
	}
	// An unpinned device asking for HTTP gets nothing.
	if _, _, err := tryHello(addr, ClientTLSConfig(Options{Identity: U, Pins: NewPins(S.ID), Now: fixedNow(testNow)}, S.ID)); err == nil {
		t.Errorf("Hello() from unpinned device while pairing open succeeded, want refused")
	}
	srv.SetPairHandler(nil)
	if c, err := DialPair(ctx, uOpts, addr); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("DialPair() after closing: read succeeded, want refused")
		}
		c.Close()
	}
}

// TestClient runs the real Client over both HTTP versions.
func TestClient(t *testing.T) {
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	_, addr := startServer(t, Options{Identity: S, Pins: NewPins(C.ID), Now: fixedNow(testNow)}, helloHandler(S))
	for _, v := range []struct {
		name  string
		http  HTTPVersion
		proto string
	}{{"HTTP1", HTTP1, "HTTP/1.1"}, {"HTTP2", HTTP2, "HTTP/2.0"}} {
		t.Run(v.name, func(t *testing.T) {
			cl := NewClient(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow), HTTP: v.http}, S.ID, addr)
			defer cl.CloseIdleConnections()
			for range 3 {
				resp, err := cl.Get("https://" + S.ID.Short() + "/v1/hello")
				if err != nil {
					t.Fatalf("Get() = %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.Proto != v.proto {
					t.Fatalf("Get() = %s %s %s, want 200 %s", resp.Proto, resp.Status, body, v.proto)
				}
			}
		})
	}
	// A client dialling the wrong device fails.
	cl := NewClient(Options{Identity: C, Pins: NewPins(S.ID, C.ID), Now: fixedNow(testNow)}, C.ID, addr)
	if _, err := cl.Get("https://x/v1/hello"); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("Get(wrong device) = %v, want %v", err, ErrUnknownPeer)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	block := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(block)
		<-r.Context().Done() // a long poll
	})
	ln, addr := listenLocal(t)
	s := NewServer(Options{Identity: S, Pins: NewPins(C.ID), Now: fixedNow(testNow)}, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	cl := NewClient(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow)}, S.ID, addr)
	go cl.Get("https://x/v1/changes")
	<-block
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Run() did not return after cancel")
	}
}

func TestTLS13PicksAESGCM(t *testing.T) {
	const (
		aes128 = tls.TLS_AES_128_GCM_SHA256
		aes256 = tls.TLS_AES_256_GCM_SHA384
		chacha = tls.TLS_CHACHA20_POLY1305_SHA256
		gcm12  = tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
		cbc12  = tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
	)
	tests := []struct {
		name   string
		suites []uint16
		want   bool
	}{
		{"aes first", []uint16{aes128, aes256, chacha, gcm12}, aesGCMHardware},
		{"aes256 only", []uint16{aes256}, true},
		{"chacha only", []uint16{chacha, gcm12}, false},
		{"chacha first", []uint16{chacha, aes128, gcm12}, false},
		{"no 1.3 suites", []uint16{gcm12}, false},
		{"unknown first then aes", []uint16{0x0a0a, aes128, chacha}, aesGCMHardware},
		{"cbc first", []uint16{cbc12, aes128, chacha}, false},
		{"empty", nil, false},
	}
	for _, tc := range tests {
		if got := tls13PicksAESGCM(tc.suites); got != tc.want {
			t.Errorf("tls13PicksAESGCM(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPerAddressLimitReleases makes more connections, good and refused, than
// the per-address limit allows at once: closed ones must be forgotten.
func TestPerAddressLimitReleases(t *testing.T) {
	S, C, U := newTestIdentity(t, "S"), newTestIdentity(t, "C"), newTestIdentity(t, "U")
	srv, addr := startServer(t, Options{Identity: S, Pins: NewPins(C.ID), Now: fixedNow(testNow)}, helloHandler(S))
	good := ClientTLSConfig(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow)}, S.ID)
	bad := ClientTLSConfig(Options{Identity: U, Pins: NewPins(S.ID), Now: fixedNow(testNow)}, S.ID)
	for i := range 2 * maxConnsPerIP {
		if _, _, err := tryHello(addr, bad); err == nil {
			t.Fatalf("Hello(unpinned) #%d succeeded, want refused", i)
		}
		if _, _, err := tryHello(addr, good); err != nil {
			t.Fatalf("Hello(pinned) #%d = %v, want success", i, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.mu.Lock()
		n := len(srv.perIP) + len(srv.served) + len(srv.pending)
		srv.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Server tracks %d addresses/connections after all closed, want 0", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
