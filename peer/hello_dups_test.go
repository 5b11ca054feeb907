package peer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestDuplicateHelloFolders: a peer's hello that lists the folder "f"
// 10,000 times (within the 10,000 a session accepts) gets one poll of
// "f", not one per entry (each held a request, a 64 KiB frame reader and
// a batch of records for as long as the peer kept it open).
func TestDuplicateHelloFolders(t *testing.T) {
	const dups = 10_000
	n := newTestNet(t)
	victim := n.addDevice("victim")
	evil := &testDev{net: n, name: "evil", id: deviceFromName("evil")}
	folders := make([]string, dups)
	for i := range folders {
		folders[i] = "f"
	}
	var inflight, maxIn, hellos atomic.Int64
	evil.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/hello":
			hellos.Add(1)
			json.NewEncoder(w).Encode(Hello{ID: evil.id.String(), Protocol: ProtocolVersion, Folders: folders})
		case "/v1/folders/f/changes":
			cur := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				old := maxIn.Load()
				if cur <= old || maxIn.CompareAndSwap(old, cur) {
					break
				}
			}
			<-r.Context().Done() // a long poll that does not end
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(evil.srv.Close)
	n.mu.Lock()
	n.devs[evil.id] = evil
	n.mu.Unlock()
	startDev(t, victim, evil)
	// The session starts its polls before its first ping: by the third
	// hello they have all been started.
	waitFor(t, "the session's pings", converge, func() bool { return hellos.Load() >= 3 && inflight.Load() > 0 })
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if got := maxIn.Load(); got > 1 {
		t.Errorf("%d concurrent changes requests for the one folder f (hello listed it %d times); heap in use %d MiB, goroutines %d",
			got, dups, ms.HeapInuse>>20, runtime.NumGoroutine())
	}
	victim.stop()
}
