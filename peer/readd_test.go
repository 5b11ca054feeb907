package peer

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// shareWith reconfigures d's folder "f" to be shared with peers only
// (every device of d.peers stays pinned).
func shareWith(d *testDev, peers ...*testDev) {
	var pc []PeerConfig
	for _, p := range d.peers {
		pc = append(pc, PeerConfig{ID: p.id, Name: p.name})
	}
	ids := []deviceid.ID{}
	for _, p := range peers {
		ids = append(ids, p.id)
	}
	d.eng.Configure(pc, []FolderConfig{{ID: "f", Root: d.root, Peers: ids}})
}

// TestPeerAddedBackToFolder: alpha has charlie's record of
// new.txt but has not pulled it yet (a pull pass still busy, charlie
// offline for a moment: any delay). The user takes charlie out of the
// folder and adds it back. The pass that runs meanwhile evaluates
// new.txt without charlie's record (evaluate skips devices the folder
// is not shared with) and drops it from the dirty set. Added back,
// charlie's stored records are never evaluated again: Configure only
// swaps the folder's peer set (setPeers), nothing marks the folder
// all-dirty, and the resumed poll starts above new.txt's sequence, so no
// record of it arrives again. new.txt reaches alpha only at the next full
// rescan (FullRescan, an hour by default).
func TestPeerAddedBackToFolder(t *testing.T) {
	n := newTestNet(t)
	a, c := n.addDevice("alpha"), n.addDevice("charlie")
	var hold atomic.Bool
	if err := a.startWith(func(o *Options) {
		o.hooks.beforePull = func() {
			for hold.Load() {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}, c); err != nil {
		t.Fatal(err)
	}
	c.start(a)
	syncedFile(t, c, a, "old.txt", []byte("synced first"))

	hold.Store(true)
	c.write("new.txt", []byte("made on charlie"))
	c.rescan()
	waitFor(t, "alpha has charlie's record of new.txt", converge, func() bool {
		_, ok, _ := a.store.Remote("f", c.id, "new.txt")
		return ok
	})
	shareWith(a) // charlie taken out of the folder...
	hold.Store(false)
	time.Sleep(500 * time.Millisecond)
	shareWith(a, c) // ...and added back
	waitFor(t, "new.txt on alpha after charlie was added back", converge, func() bool {
		return readFile(t, a, "new.txt") == "made on charlie"
	})
}
