package peer

import (
	"crypto/rand"
	"os"
	"path/filepath"
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
