package peer

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCaselessHardLinkRespelled (found in review): on a folder that
// ignores case, bravo's b.txt (a hard link of a.txt) is renamed B.txt (a
// case-only rename, which the view stores, as macOS does). An edit made
// through a.txt has the other names scanned; "b.txt", which the file
// system would find as B.txt, is not recorded live again (alpha would get
// a third file).
func TestCaselessHardLinkRespelled(t *testing.T) {
	a, b, backing := caselessPair(t)
	if err := os.WriteFile(filepath.Join(backing, "a.txt"), []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(backing, "a.txt"), filepath.Join(backing, "b.txt")); err != nil {
		t.Fatal(err)
	}
	startWatching(t, a, b, nil)
	waitFor(t, "alpha to get both names", converge, func() bool { return fileIs(a, "a.txt", "v1") && fileIs(a, "b.txt", "v1") })
	waitIdle(t, b)
	if err := os.Rename(filepath.Join(b.root, "b.txt"), filepath.Join(b.root, "B.txt")); err != nil {
		t.Fatal(err)
	}
	if d := waitTree(t, a.root, map[string]string{"a.txt": "v1", "B.txt": "v1"}, 8*time.Second); d != "" {
		t.Fatalf("alpha after the case rename:\n%s", d)
	}
	waitIdle(t, b)
	if err := os.WriteFile(filepath.Join(b.root, "a.txt"), []byte("v2, edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.txt": "v2, edited", "B.txt": "v2, edited"}
	if d := treeDiff("bravo", backingTree(t, backing), "want", want); d != "" {
		t.Fatalf("bravo's disk: %s", d)
	}
	waitFor(t, "alpha to get the edit", converge, func() bool { return fileIs(a, "a.txt", "v2, edited") && fileIs(a, "B.txt", "v2, edited") })
	time.Sleep(time.Second)
	if r, ok, err := b.store.Local("f", "b.txt"); err == nil && ok && !r.Deleted {
		t.Errorf("bravo records b.txt live (%d bytes), a spelling not on its disk", r.Size)
	}
	if d := treeDiff("alpha", backingTree(t, a.root), "want", want); d != "" {
		t.Errorf("alpha's tree 1 s after bravo's edit:\n%s", d)
	}
}
