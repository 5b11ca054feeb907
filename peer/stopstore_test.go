package peer

import (
	"net/http/httptest"
	"testing"
	"time"
)

// Found by the model soak (SYNCD_SOAK, -rapid.seed=2, sequence ~505): a
// "changes" request still in flight when a device stopped reached
// Store.Sync after the store was closed. badger's Close sets db.mt = nil,
// Sync dereferenced it under db.lock.RLock and panicked (net/http
// recovered the panic, the read lock was never released), and Close's
// flushMemtable waited for db.lock for ever: the stop hung.

// TestStopWithChangesInFlight parks a changes request just before its
// index sync (by holding Engine.syncMu), stops the device (the engine
// ends, then the store is closed, as testDev.stop and the daemon do), then
// lets the request go on: the engine's Run waits for it, so the store is
// closed after it, and it ends without a panic.
func TestStopWithChangesInFlight(t *testing.T) {
	n := newTestNet(t)
	a := n.addDevice("a")
	b := n.addDevice("b")
	a.start(b)
	time.Sleep(300 * time.Millisecond) // folder configured and scanned

	h := a.eng.Handler()
	a.eng.syncMu.Lock() // the request will block in durableTop, before Store.Sync
	panicked := make(chan any, 1)
	done := make(chan int, 1)
	go func() {
		defer func() { panicked <- recover() }()
		req := httptest.NewRequest("GET", "/v1/folders/f/changes?since=0&epoch=0&wait=0s", nil)
		req.Header.Set(testHeader, b.id.String())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		done <- rec.Code
	}()
	time.Sleep(200 * time.Millisecond) // the request is parked on syncMu

	stopped := make(chan struct{})
	go func() { a.stop(); close(stopped) }() // Engine.Run waits for the request, then the store is closed
	time.Sleep(200 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("the device stopped (and closed its store) while a request was still being served")
	default:
	}
	a.eng.syncMu.Unlock()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the device did not stop once the request could go on")
	}

	select {
	case p := <-panicked:
		if p != nil {
			t.Fatalf("changes request served after stop panicked: %v", p)
		}
		t.Logf("request answered %d", <-done)
	case <-time.After(10 * time.Second):
		t.Fatal("changes request hung after stop")
	}
}
