package peer

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/syncd-project/syncd/index"
)

// TestKeptTempMovedWithItsDirectory: a pull of dir/big.bin fails part way
// (the link to alpha is cut), so bravo keeps its temp file for a resume;
// then the user renames dir on bravo. Once synced again, no temp file is
// left anywhere in bravo's folder.
func TestKeptTempMovedWithItsDirectory(t *testing.T) {
	var armed atomic.Bool
	var once sync.Once
	var n *testNet
	var a, b *testDev
	n, a, b = startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.applyFile = func(p string) {
			if p == "dir/big.bin" && armed.Load() {
				once.Do(func() { n.setLink(a, b, false) })
			}
		}
	})
	syncedFile(t, a, b, "dir/small.txt", []byte("small"))
	big := make([]byte, 3<<20)
	rand.Read(big)
	armed.Store(true)
	a.write("dir/big.bin", big)
	a.rescan()
	waitFor(t, "bravo's kept temp file", converge, func() bool { return len(temps(b.root)) > 0 })
	if err := os.Rename(filepath.Join(b.root, "dir"), filepath.Join(b.root, "moved")); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	n.setLink(a, b, true)
	waitConverged(t, converge, a, b)
	if left := temps(b.root); len(left) > 0 {
		t.Errorf("temp files left on bravo: %v", left)
	}
}

// temps lists syncd temp files under root.
func temps(root string) []string {
	var out []string
	filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(de.Name(), index.TempPrefix) {
			out = append(out, p)
		}
		return nil
	})
	return out
}
