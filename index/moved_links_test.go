package index

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestScanMovedAmbiguousLinks: b.img (large) and its hard link a.img are
// recorded. a.img is edited in the middle in place, size and mtime put
// back (a tagger), and the edit is recorded under a.img, while b.img's
// rescan fails (an I/O error) and its record stays as it was. Then a.img
// is deleted and b.img renamed to x.img, in one debounce: the scan buries
// a.img (new content) and b.img (old content) under the same (inode,
// size, mtime) key, the stale one last. x.img must be hashed, not take
// either's blocks: with the stale ones its record would hold its current
// inode and change time, and no later scan would look at it again.
func TestScanMovedAmbiguousLinks(t *testing.T) {
	needCtime(t)
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
	if err := os.Remove(filepath.Join(e.root, "a.img")); err != nil {
		t.Fatal(err)
	}
	e.move("b.img", "x.img")
	res := e.scan("a.img", "b.img", "x.img")
	if got := e.rec("x.img").Content; got != want {
		t.Errorf("x.img (b.img renamed; its edit was recorded under a.img): content %s, want %s (scan: %+v)", got, want, res)
	}
	if res.Moved != 0 {
		t.Errorf("x.img took remembered blocks (Moved %d), though its two names were buried with different contents", res.Moved)
	}
}

// TestScanMovedLinkWithLiveName: as TestScanMovedAmbiguousLinks,
// but a.img (the name whose record holds the edit) stays; only b.img
// (stale record, its rescan failed) is renamed to x.img. Only one name
// is buried, so the key is not ambiguous: x.img takes b.img's stale
// blocks (first and last blocks match; the edit is in the middle), and
// is recorded with the current change time, while its hard link a.img
// holds the new content. The two names of one inode keep different
// records for good.
func TestScanMovedLinkWithLiveName(t *testing.T) {
	needCtime(t)
	const size = 12 << 20
	e := newScanEnv(t)
	data := e.writeRandom("b.img", 21, size)
	e.scan()
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
	e.move("b.img", "x.img")
	res := e.scan("b.img", "x.img")
	if got := e.rec("x.img").Content; got != want {
		t.Errorf("x.img (b.img renamed; a hard link of a.img, whose edit was recorded) content %s, want %s (scan: %+v)", got, want, res)
	}
	if got := e.rec("a.img").Content; got != want {
		t.Errorf("a.img content %s, want %s", got, want)
	}
}
