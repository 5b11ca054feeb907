package transport

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientDialsInTurn checks that a client has at most maxDialsPerPeer
// handshakes in progress with one peer: a server refuses an address's
// handshakes beyond maxHandshakesPerIP, and a burst of block connections
// used to run into that limit ("connection reset by peer").
func TestClientDialsInTurn(t *testing.T) {
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A peer that accepts connections and never answers a ClientHello.
	var accepted atomic.Int64
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	cl := NewClient(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(testNow), HTTP: HTTP1}, S.ID, ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", "https://peer/x", nil)
			if resp, err := cl.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	got := accepted.Load()
	cancel()
	wg.Wait()
	if got != maxDialsPerPeer {
		t.Errorf("%d connections dialled at once, want %d", got, maxDialsPerPeer)
	}
}
