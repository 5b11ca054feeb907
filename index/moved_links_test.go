package index

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestScanMovedStaleLink: b.img (large) and its hard link a.img are
// recorded. a.img is edited in the middle in place, size and mtime put
// back (a tagger), and the edit is recorded under a.img, while b.img's
// rescan fails (an I/O error) and its record stays as it was. Then b.img
// is renamed to x.img, with a.img deleted in the same debounce (both
// names buried under the same inode, size and mtime, with different
// contents: ambiguous) or left in place (only the stale name buried).
// Either way x.img must be hashed, not take the stale blocks: its record
// would then hold its current inode and change time, and no later scan
// would look at it again.
func TestScanMovedStaleLink(t *testing.T) {
	needCtime(t)
	for _, del := range []bool{true, false} {
		name := "a.img stays"
		if del {
			name = "a.img deleted"
		}
		t.Run(name, func(t *testing.T) {
			const size = 12 << 20
			e := newScanEnv(t)
			data := e.writeRandom("b.img", 21, size)
			e.scan()
			_, was := chunkBlocks(data)
			e.link("b.img", "a.img")
			e.scan("a.img")
			off := int64(size / 2)
			tagInPlace(t, filepath.Join(e.root, "a.img"), off, "EDITED IN THE MIDDLE")
			copy(data[off:], "EDITED IN THE MIDDLE")
			bImg := filepath.Join(e.root, "b.img")
			e.sc.hooks.open = func(name string) (*os.File, error) {
				if name == bImg {
					return nil, errors.New("injected read error")
				}
				return os.Open(name)
			}
			e.scan("a.img")
			e.sc.hooks.open = nil
			_, want := chunkBlocks(data)
			if got := e.rec("a.img").Content; got != want {
				t.Fatalf("a.img after its edit was scanned: %s, want %s", got, want)
			}
			if got := e.rec("b.img").Content; got != was {
				t.Fatalf("b.img's record should have stayed stale (its rescan failed): %s", got)
			}
			paths := []string{"b.img", "x.img"}
			if del {
				if err := os.Remove(filepath.Join(e.root, "a.img")); err != nil {
					t.Fatal(err)
				}
				// Buried in this order, the stale record comes last.
				paths = []string{"a.img", "b.img", "x.img"}
			}
			e.move("b.img", "x.img")
			res := e.scan(paths...)
			if got := e.rec("x.img").Content; got != want {
				t.Errorf("x.img (b.img renamed; its edit was recorded under a.img): content %s, want %s (scan: %+v)", got, want, res)
			}
			if res.Moved != 0 {
				t.Errorf("x.img took remembered blocks (Moved %d)", res.Moved)
			}
		})
	}
}
