package peer

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// snapshotDir copies the directory from to to, replacing it, with modes,
// mtimes and hard links kept (a folder restored from a snapshot looks
// unchanged to the scan) and sparse (badger's value log is a sparse file
// of 128 MiB).
func snapshotDir(t *testing.T, from, to string) {
	if err := os.RemoveAll(to); err != nil {
		t.Error(err)
		return
	}
	if out, err := exec.Command("cp", "-a", "--sparse=always", from, to).CombinedOutput(); err != nil {
		t.Errorf("cp: %v %s", err, out)
	}
}

// TestPowerLossKeepsServedSequences: bravo's index loses, in a power cut,
// everything written since it last synced it to disk. A record alpha was
// served was on disk before it was served, so no sequence alpha knows is
// handed out again: a file written after the power cut reaches alpha.
func TestPowerLossKeepsServedSequences(t *testing.T) {
	durable := filepath.Join(t.TempDir(), "index")
	var mu sync.Mutex // held while the snapshot is written
	n, a, b := startTwo(t, nil)
	snapshot := func(o *Options) {
		o.hooks.afterIndexSync = func() {
			mu.Lock()
			defer mu.Unlock()
			snapshotDir(t, filepath.Join(b.home, "index"), durable)
		}
	}
	syncedFile(t, b, a, "base.txt", []byte("base"))
	b.stop() // a clean stop: its index is on disk
	snapshotDir(t, filepath.Join(b.home, "index"), durable)
	if err := b.startWith(snapshot, a); err != nil {
		t.Fatal(err)
	}
	syncedFile(t, b, a, "draft.txt", []byte("draft"))
	if err := os.Remove(filepath.Join(b.root, "draft.txt")); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	waitConverged(t, converge, a, b)
	b.stop()
	// The power cut: the index is what its last sync (or clean stop) left.
	mu.Lock()
	if err := os.RemoveAll(filepath.Join(b.home, "index")); err != nil {
		t.Fatal(err)
	}
	snapshotDir(t, durable, filepath.Join(b.home, "index"))
	mu.Unlock()
	n.setLink(a, b, false) // alpha is not reachable yet after the reboot
	b.start(a)
	b.write("new.txt", []byte("written after the reboot"))
	b.rescan()
	waitFor(t, "bravo to record new.txt", converge, func() bool {
		_, ok, err := b.store.Local("f", "new.txt")
		return err == nil && ok
	})
	n.setLink(a, b, true)
	waitConverged(t, converge, a, b)
	if !fileIs(a, "new.txt", "written after the reboot") {
		t.Error("new.txt did not reach alpha")
	}
}
