package peer

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEditAfterDirRename: with the watcher on, a directory holding a
// subdirectory is renamed (a file manager's rename), then a file in the
// subdirectory is edited. The edit must reach the peer without waiting for
// the hourly full rescan.
func TestEditAfterDirRename(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	a.write("proj/src/main.go", []byte("v1"))
	startWatching(t, a, b, nil)
	waitConverged(t, converge, a, b)
	if err := os.Rename(filepath.Join(a.root, "proj"), filepath.Join(a.root, "proj2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rename to reach b", converge, func() bool { return fileIs(b, "proj2/src/main.go", "v1") })
	a.write("proj2/src/main.go", []byte("v2 edited after the rename"))
	waitFor(t, "the edit in the renamed directory to reach b", converge, func() bool {
		return fileIs(b, "proj2/src/main.go", "v2 edited after the rename")
	})
}

// TestEditsDuringLongPull: while a pull takes long (a big file on a
// slow link), the user keeps saving files, each save a debounced scan
// request. None of those edits may be lost.
func TestEditsDuringLongPull(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	a.write("big.bin", randBytes(1, 1<<20))
	if err := os.MkdirAll(filepath.Join(b.root, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	startWatching(t, a, b, func(o *Options) {
		o.hooks.applyFile = func(p string) {
			if p == "big.bin" {
				once.Do(func() { close(entered) })
				<-release
			}
		}
	})
	select {
	case <-entered:
	case <-time.After(converge):
		t.Fatal("pull of big.bin never started")
	}
	const edits = 80
	for i := range edits {
		b.write(fmt.Sprintf("notes/%02d.txt", i), []byte(fmt.Sprintf("saved while pulling %d", i)))
		time.Sleep(50 * time.Millisecond) // > debounce: one scan request each
	}
	close(release)
	deadline := time.Now().Add(converge)
	for {
		var missing []int
		for i := range edits {
			if !fileIs(a, fmt.Sprintf("notes/%02d.txt", i), fmt.Sprintf("saved while pulling %d", i)) {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d files saved on b during the long pull never reached a: notes/NN.txt for NN in %v", len(missing), edits, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRootRenamedAndBack: the synced folder is renamed and renamed
// back (a file manager's rename, then undo). New files at its top level
// must still sync.
func TestRootRenamedAndBack(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	a.write("top.txt", []byte("v1"))
	a.write("sub/in.txt", []byte("v1"))
	startWatching(t, a, b, nil)
	waitConverged(t, converge, a, b)
	if err := os.Rename(a.root, a.root+".renamed"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := os.Rename(a.root+".renamed", a.root); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	a.write("sub/in.txt", []byte("v2"))
	a.write("top.txt", []byte("v2"))
	deadline := time.Now().Add(converge)
	for !(fileIs(b, "sub/in.txt", "v2") && fileIs(b, "top.txt", "v2")) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: b has sub/in.txt=v2: %v, top.txt=v2: %v", converge, fileIs(b, "sub/in.txt", "v2"), fileIs(b, "top.txt", "v2"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOneFullScanPerInterval: with the watcher on, the folder is scanned
// in full once per Options.FullRescan, not twice (the watcher's own
// periodic scan came on top of the folder loop's).
func TestOneFullScanPerInterval(t *testing.T) {
	var scans atomic.Int32
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	startWatching(t, a, b, func(o *Options) {
		o.FullRescan = 300 * time.Millisecond
		o.hooks.fullScan = func() { scans.Add(1) }
	})
	time.Sleep(100 * time.Millisecond)
	from := scans.Load()
	time.Sleep(3 * time.Second) // ten intervals
	got := scans.Load() - from
	t.Logf("%d full scans in ten intervals", got)
	if got > 12 {
		t.Errorf("%d full scans in ten intervals, want at most one each (and a few more at most)", got)
	}
}
