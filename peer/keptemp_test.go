package peer

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestKeptTempMovedWithItsDirectory: a pull of dir/big.bin fails part way
// (the link to alpha is cut), so bravo keeps its temp file for a resume;
// then the user renames dir on bravo. Once synced again, no temp file is
// left anywhere in bravo's folder.
func TestKeptTempMovedWithItsDirectory(t *testing.T) {
	var cut oneShot
	var n *testNet
	var a, b *testDev
	n, a, b = startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.applyFile = func(p string) {
			if p == "dir/big.bin" {
				cut.offer(func() { n.setLink(a, b, false) })
			}
		}
	})
	syncedFile(t, a, b, "dir/small.txt", []byte("small"))
	big := make([]byte, 3<<20)
	rand.Read(big)
	cut.arm()
	a.write("dir/big.bin", big)
	a.rescan()
	waitFor(t, "bravo's kept temp file", converge, func() bool { return len(tempsIn(t, b.root)) > 0 })
	if err := os.Rename(filepath.Join(b.root, "dir"), filepath.Join(b.root, "moved")); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	n.setLink(a, b, true)
	waitConverged(t, converge, a, b)
	if left := tempsIn(t, b.root); len(left) > 0 {
		t.Errorf("temp files left on bravo: %v", left)
	}
}

// crashAtLink starts alpha and bravo with d/keep.txt synced; then alpha
// makes the symlink d/l, and bravo's folder goroutine dies (as in a kill
// -9: nothing after it runs) while pulling it, once its temp symlink is in
// place and the target checked. bravo's engine still runs otherwise.
func crashAtLink(t *testing.T) (*testNet, *testDev, *testDev) {
	var crash oneShot
	n, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.afterFinalCheck = func(p string) {
			if p == "d/l" && crash.armed.Load() {
				crash.offer(func() {})
				runtime.Goexit()
			}
		}
	})
	syncedFile(t, a, b, "d/keep.txt", []byte("keep"))
	crash.arm()
	if err := os.Symlink("keep.txt", filepath.Join(a.root, "d/l")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "bravo to die placing d/l", converge, crash.fired.Load)
	return n, a, b
}

// TestCrashSymlinkTempMoved: bravo dies while placing a symlink pulled
// from alpha, leaving its temp symlink; while it is down the user renames
// the directory. Once it runs again, no temp is left in its folder.
func TestCrashSymlinkTempMoved(t *testing.T) {
	_, a, b := crashAtLink(t)
	b.stop()
	if left := tempsIn(t, b.root); len(left) != 1 {
		t.Fatalf("temps after the crash: %q, want the symlink's", left)
	}
	if err := os.Rename(filepath.Join(b.root, "d"), filepath.Join(b.root, "moved")); err != nil {
		t.Fatal(err)
	}
	b.start(a)
	waitConverged(t, converge, a, b)
	if left := tempsIn(t, b.root); len(left) > 0 {
		t.Errorf("temps left in bravo's folder: %q", left)
	}
}

// TestCrashSymlinkTempDeleted: as above, but alpha deletes the directory,
// and bravo learns of it before it stops: once it runs again, the temp
// symlink does not keep it from deleting the directory too.
func TestCrashSymlinkTempDeleted(t *testing.T) {
	_, a, b := crashAtLink(t)
	if err := os.RemoveAll(filepath.Join(a.root, "d")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "bravo to learn of the deletion", converge, func() bool {
		r, ok, _ := b.store.Remote("f", a.id, "d")
		return ok && r.Deleted
	})
	b.stop()
	b.start(a)
	waitConverged(t, converge, a, b)
	if _, err := os.Lstat(filepath.Join(b.root, "d")); !os.IsNotExist(err) {
		t.Errorf("bravo's d is still there (%v)", err)
	}
}
