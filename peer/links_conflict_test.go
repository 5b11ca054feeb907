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

// TestConflictCopiesInOneSecondUnscanned (found in review): as
// TestConflictCopiesInOneSecond, but bravo's second losing edit is not
// scanned yet when alpha's version arrives (the watcher's debounce, a
// scan still running, no watcher): the final check makes it a conflict
// copy of content not recorded, which is hashed for the tagged name,
// instead of going to the trash.
func TestConflictCopiesInOneSecondUnscanned(t *testing.T) {
	n, a, b := pair2(t)
	syncedFile(t, a, b, "doc.txt", []byte("base"))
	sec := time.Now().Add(-time.Hour).Truncate(time.Second)
	lose := func(mine, theirs string, mt time.Time, win time.Duration, scanB bool) {
		t.Helper()
		n.setLink(a, b, false)
		time.Sleep(100 * time.Millisecond)
		b.write("doc.txt", []byte(mine))
		if err := os.Chtimes(filepath.Join(b.root, "doc.txt"), mt, mt); err != nil {
			t.Fatal(err)
		}
		a.write("doc.txt", []byte(theirs))
		newer := time.Now().Add(win)
		if err := os.Chtimes(filepath.Join(a.root, "doc.txt"), newer, newer); err != nil {
			t.Fatal(err)
		}
		a.rescan()
		if scanB {
			b.rescan()
		}
		time.Sleep(300 * time.Millisecond)
		n.setLink(a, b, true)
		waitConverged(t, converge, a, b)
	}
	lose("first loser", "alpha 1", sec.Add(100*time.Millisecond), time.Minute, true)
	lose("second loser, other bytes", "alpha 2", sec.Add(600*time.Millisecond), 2*time.Minute, false)
	time.Sleep(300 * time.Millisecond)
	got := waitConverged(t, converge, a, b)
	held := map[string]bool{}
	var copies []string
	for p := range got {
		if isConflictCopy(p) {
			copies = append(copies, p)
			held[readFile(t, b, p)] = true
		}
	}
	if !held["second loser, other bytes"] {
		t.Errorf("conflict copies %v hold %v: bravo's second edit is not in sight (in bravo's trash: %v)",
			copies, held, trashHolds(t, b.root, "second loser"))
	}
	if readFile(t, b, "doc.txt") != "alpha 2" {
		t.Errorf("doc.txt on bravo = %q", readFile(t, b, "doc.txt"))
	}
}
