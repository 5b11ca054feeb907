package peer

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestEditRightAfterMoveInstall: bravo's pull moves album/x.bin
// to album/y.bin (alpha renamed it), and right after the rename, before
// the pull has recorded it, a program on bravo appends to album/y.bin.
// That edit is a new version of y.bin on bravo: it must be recorded and
// reach alpha without waiting for the hourly full rescan. (The stat after
// the rename, which the record and the own-writes note took, held the
// edit, so the watcher's report of it was dropped as the pull's own.)
func TestEditRightAfterMoveInstall(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	data := randBytes(41, 1<<20)
	a.write("album/x.bin", data)
	var armed, fired atomic.Bool
	edit := append(append([]byte{}, data...), []byte("appended on bravo")...)
	startWatching(t, a, b, func(o *Options) {
		o.hooks.afterMoveRename = func(p string) {
			if p == "album/y.bin" && armed.Load() && fired.CompareAndSwap(false, true) {
				// A user's program writes the file at its new place.
				if err := os.WriteFile(filepath.Join(b.root, "album/y.bin"), edit, 0o644); err != nil {
					t.Error(err)
				}
			}
		}
	})
	waitFor(t, "bravo to get album/x.bin", converge, func() bool { return fileIs(b, "album/x.bin", string(data)) })
	waitConverged(t, converge, a, b)
	f0 := b.eng.folders["f"]
	f0.own.mu.Lock()
	t.Logf("bravo before: %d reports dropped as own writes", f0.own.skipped)
	f0.own.mu.Unlock()
	armed.Store(true)
	if err := os.Rename(filepath.Join(a.root, "album/x.bin"), filepath.Join(a.root, "album/y.bin")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bravo's pull to move x.bin to y.bin", converge, fired.Load)
	time.Sleep(500 * time.Millisecond)
	if r, ok, _ := b.store.Local("f", "album/y.bin"); ok && r.Size != int64(len(edit)) {
		t.Errorf("bravo records album/y.bin with %d bytes; the disk holds %d (the edit)", r.Size, len(edit))
	}
	f := b.eng.folders["f"]
	f.own.mu.Lock()
	t.Logf("bravo: %d reports dropped as own writes; notes left %d", f.own.skipped, len(f.own.seen))
	f.own.mu.Unlock()
	waitFor(t, "bravo's edit of album/y.bin to reach alpha", 10*time.Second, func() bool { return fileIs(a, "album/y.bin", string(edit)) })
}
