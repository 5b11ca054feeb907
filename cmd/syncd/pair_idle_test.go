package main

// Idle connections and the pairing slots (in-process: two minimal daemons on
// 127.0.0.1, no mDNS, no binary).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport"
	"github.com/syncd-project/syncd/transport/deviceid"
	"github.com/syncd-project/syncd/transport/pair"
)

// pairTestDaemon is the part of a daemon that pairing uses: identity, pins,
// logger, config name, and (for a host) a transport server on 127.0.0.1.
func pairTestDaemon(t *testing.T, name string) *daemon {
	t.Helper()
	id, err := transport.CreateIdentity(filepath.Join(t.TempDir(), "identity"), name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &daemon{id: id, pins: transport.NewPins(), log: slog.New(slog.DiscardHandler), cfg: &Config{Name: name}}
}

// pairTestServe starts d's transport server on 127.0.0.1 and returns its address.
func pairTestServe(t *testing.T, d *daemon) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.ln = ln
	d.server = transport.NewServer(d.transportOptions(), http.NotFoundHandler())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.server.Serve(ln) }()
	t.Cleanup(func() { d.server.Close(); <-done })
	return ln.Addr().String()
}

// pairTestOpen opens d's pairing endpoint as handlePairHost does.
func pairTestOpen(t *testing.T, d *daemon, o pair.Options) *pairing {
	t.Helper()
	h, err := pair.NewHost(o)
	if err != nil {
		t.Fatal(err)
	}
	p := newPairing(h)
	d.server.SetPairHandler(func(conn *tls.Conn, _ *x509.Certificate, peerID deviceid.ID) {
		d.servePair(p, conn, peerID)
	})
	t.Cleanup(func() { d.server.SetPairHandler(nil); h.Cancel(); p.abort() })
	return p
}

// TestIdleConnsDoNotLockOutPairing: a stranger on the LAN opens pairConns
// pairing connections and never sends a hello. Such connections "do not use
// the code" (pair/doc.go), yet each holds one of the pairConns protocol slots
// for the whole attempt timeout (30 s), and reconnecting every 30 s keeps
// them all taken for the code's whole lifetime. The real joiner, with the
// right code, is then dropped without a word and told the host "is not
// waiting to pair any more", while the host's user sees nothing at all.
func TestIdleConnsDoNotLockOutPairing(t *testing.T) {
	host, joiner := pairTestDaemon(t, "host"), pairTestDaemon(t, "joiner")
	addr := pairTestServe(t, host)
	p := pairTestOpen(t, host, pair.Options{TTL: time.Minute})

	// The stranger: pairConns idle pairing connections (one per second,
	// well under the rate limit), each with a throwaway identity.
	for i := range pairConns {
		s := pairTestDaemon(t, "stranger")
		c, err := transport.DialPair(context.Background(), s.transportOptions(), addr)
		if err != nil {
			t.Fatalf("stranger conn %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		time.Sleep(600 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n := len(p.conns)
		p.mu.Unlock()
		if n == pairConns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d stranger connections in the protocol, want %d", n, pairConns)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // the rate limiter has tokens again

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	res, _, err := joiner.join(ctx, p.host.Code(), addr, 20*time.Second)
	if err != nil {
		t.Fatalf("joiner with the right code, while %d idle strangers wait: %v (after %v)\nhint: %s",
			pairConns, err, time.Since(start).Round(time.Millisecond), joinHint(err))
	}
	if res.PeerID != host.id.ID {
		t.Errorf("joiner paired with %s, want the host %s", res.PeerID, host.id.ID)
	}
}
