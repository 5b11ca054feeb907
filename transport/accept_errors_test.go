package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// emfileListener is a real TCP listener whose first Accept fails the way
// Go's net package reports a full file table: "accept4: too many open
// files" (EMFILE), exactly the error a listener gets while the process is
// at its RLIMIT_NOFILE (e.g. while a LAN host holds many connections open).
type emfileListener struct {
	net.Listener
	once sync.Once
}

func (l *emfileListener) Accept() (net.Conn, error) {
	var fail bool
	l.once.Do(func() { fail = true })
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Listener.Addr(),
			Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServeSurvivesEMFILE: a "too many open files" from accept (a LAN
// host holding many connections open can cause it) does not end
// Server.Serve, which would stop the daemon: it waits and accepts again,
// as net/http does.
func TestServeSurvivesEMFILE(t *testing.T) {
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &emfileListener{Listener: raw}
	s := NewServer(Options{Identity: S, Pins: NewPins(C.ID), Now: fixedNow(testNow)}, helloHandler(S))
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() { s.Close(); raw.Close() })

	// The first connection triggers the failing Accept (the kernel queues
	// it; Serve's next Accept would take it).
	good := ClientTLSConfig(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow)}, S.ID)
	helloErr := make(chan error, 1)
	go func() {
		_, caller, err := tryHello(raw.Addr().String(), good)
		if err == nil && caller != C.ID.String() {
			err = errors.New("wrong caller " + caller)
		}
		helloErr <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Server.Serve returned %v after one transient accept error (EMFILE); want it to keep serving like net/http", err)
	case err := <-helloErr:
		if err != nil {
			t.Fatalf("pinned peer's hello after a transient EMFILE: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("neither served nor returned within 20 s")
	}
}

// TestSilentSocketsDoNotLockOutPeers: sockets that never send a
// ClientHello (from as many addresses as it takes to reach the global
// handshake bound) take no handshake slot, so a pinned peer still gets
// in; and the server drops each of them after helloTimeout.
func TestSilentSocketsDoNotLockOutPeers(t *testing.T) {
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	srv, addr := startServer(t, Options{Identity: S, Pins: NewPins(C.ID), Now: fixedNow(testNow)}, helloHandler(S))
	var silent []net.Conn
	t.Cleanup(func() {
		for _, c := range silent {
			c.Close()
		}
	})
	for ip := 2; ip < 2+maxHandshakes/maxHandshakesPerIP; ip++ {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.0.%d", ip))}}
		for range maxHandshakesPerIP {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			silent = append(silent, c)
		}
	}
	waitPending := func(want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			srv.mu.Lock()
			n := len(srv.pending)
			srv.mu.Unlock()
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d connections in handshake, want %d", n, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitPending(len(silent))

	cl := NewClient(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow), HTTP: HTTP1}, S.ID, addr)
	defer cl.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://peer/v1/hello", nil)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("pinned peer with %d silent sockets open: %v", len(silent), err)
	}
	resp.Body.Close()

	for _, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read on a silent socket = %v, want EOF (the server drops it)", err)
		}
	}
	waitPending(0)
}

// TestGlobalConnLimit: beyond maxConns connections held at once, from any
// number of addresses, a new one is closed at once (the descriptors are
// the process's, which the index and the folders need too); once they
// are gone, a pinned peer gets in again.
func TestGlobalConnLimit(t *testing.T) {
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	srv, addr := startServer(t, Options{Identity: S, Pins: NewPins(C.ID), Now: fixedNow(testNow)}, helloHandler(S))
	const limit = 4
	srv.mu.Lock()
	srv.maxConns = limit
	srv.mu.Unlock()
	held := func() int {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.conns
	}
	var silent []net.Conn
	for i := range limit {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.0.%d", 2+i))}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	deadline := time.Now().Add(20 * time.Second)
	for held() < limit {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections held, want %d", held(), limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read on a connection beyond the limit = %v, want EOF (closed at once)", err)
	}
	if n := held(); n != limit {
		t.Errorf("%d connections held after one beyond the limit, want %d", n, limit)
	}
	for _, c := range silent {
		c.Close()
	}
	for held() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections held after they closed, want 0", held())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cl := NewClient(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow), HTTP: HTTP1}, S.ID, addr)
	defer cl.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://peer/v1/hello", nil)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("pinned peer after the connections closed: %v", err)
	}
	resp.Body.Close()
}

// TestDropUnpinned: the open connections of a device that is no longer
// pinned are closed at once; a pinned device's stay.
func TestDropUnpinned(t *testing.T) {
	S, C, D := newTestIdentity(t, "S"), newTestIdentity(t, "C"), newTestIdentity(t, "D")
	pins := NewPins(C.ID, D.ID)
	srv, addr := startServer(t, Options{Identity: S, Pins: pins, Now: fixedNow(testNow)}, helloHandler(S))
	served := func() map[string]int {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		n := map[string]int{}
		for _, id := range srv.peerOf {
			n[id.Short()]++
		}
		return n
	}
	for _, id := range []*Identity{C, D} {
		cl := NewClient(Options{Identity: id, Pins: NewPins(S.ID), Now: fixedNow(testNow), HTTP: HTTP1}, S.ID, addr)
		defer cl.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://peer/v1/hello", nil)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close() // the connection stays open, idle
	}
	if n := served(); n[C.ID.Short()] != 1 || n[D.ID.Short()] != 1 {
		t.Fatalf("connections by device: %v, want one each", n)
	}
	pins.Remove(C.ID)
	srv.DropUnpinned()
	deadline := time.Now().Add(20 * time.Second)
	for served()[C.ID.Short()] > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("connections by device after C was unpinned: %v, want none of C's", served())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := served(); n[D.ID.Short()] != 1 {
		t.Errorf("connections by device: %v, want D's to stay", n)
	}
}
