package index

import (
	"os"
	"path/filepath"
	"testing"
)

// TestScanHardLinkEditReachesOtherNames: a file with three names in the
// folder is edited through one; the watcher's scan of that name records
// the new content under the other two as well, except a name that holds
// another file by then.
func TestScanHardLinkEditReachesOtherNames(t *testing.T) {
	e := newScanEnv(t)
	e.write("a.txt", "old content")
	for _, p := range []string{"b.txt", "sub/c.txt", "d.txt"} {
		e.link("a.txt", p)
	}
	e.scan()
	// d.txt becomes a file of its own (a save that replaced it).
	if err := os.Remove(filepath.Join(e.root, "d.txt")); err != nil {
		t.Fatal(err)
	}
	e.write("d.txt", "old content")
	e.scan("d.txt")
	dBefore := e.rec("d.txt")
	if err := os.WriteFile(filepath.Join(e.root, "a.txt"), []byte("new content, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.scan("a.txt")
	_, want := chunkBlocks([]byte("new content, longer"))
	for _, p := range []string{"a.txt", "b.txt", "sub/c.txt"} {
		if got := e.rec(p).Content; got != want {
			t.Errorf("%s recorded as %s after the edit, want %s (scan: %+v)", p, got, want, res)
		}
	}
	if d := e.rec("d.txt"); d.Content != dBefore.Content || d.Sequence != dBefore.Sequence {
		t.Errorf("d.txt (another file now) was recorded again: %+v", d)
	}
	if res.Changed != 3 {
		t.Errorf("scan: %+v, want 3 changed", res)
	}
}
