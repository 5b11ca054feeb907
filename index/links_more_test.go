package index

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestScanLinkNamesOfGoneFilesForgotten (found in review): as many
// hard-linked pairs as fill the names' memory (200 here) are scanned, then
// deleted (a rotated backup snapshot made with cp -al); a full scan
// forgets their names, so that an edit through one name of a file linked
// since is recorded under its other name too (before, the dead names
// filled the memory for good and new ones were no longer noted).
func TestScanLinkNamesOfGoneFilesForgotten(t *testing.T) {
	was := maxLinkNames
	maxLinkNames = 200
	t.Cleanup(func() { maxLinkNames = was })
	e := newScanEnv(t)
	old := filepath.Join(e.root, "snapshot")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range maxLinkNames / 2 {
		p := filepath.Join(old, fmt.Sprintf("f%05d", i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(p, p+".lnk"); err != nil {
			t.Fatal(err)
		}
	}
	e.scan()
	if err := os.RemoveAll(old); err != nil {
		t.Fatal(err)
	}
	e.scan() // a full scan: nothing in the folder is hard-linked now
	e.write("a.txt", "old content")
	e.link("a.txt", "b.txt")
	e.scan()
	if err := os.WriteFile(filepath.Join(e.root, "a.txt"), []byte("new content, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.scan("a.txt")
	_, want := chunkBlocks([]byte("new content, longer"))
	if got := e.rec("b.txt").Content; got != want {
		t.Errorf("b.txt recorded as %s after the edit through a.txt, want %s (link map holds %d names of files long gone)", got, want, e.sc.links.n)
	}
}
