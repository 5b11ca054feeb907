package peer

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/syncd-project/syncd/index"
	"github.com/syncd-project/syncd/peer/internal/caseless"
)

// TestCaselessDirCaseRenameFullScan: on bravo (caseless) the user renames the
// directory Docs to DOCS (mv Docs tmp; mv tmp DOCS: the only way on
// Linux's caseless file systems). A full scan must leave alpha with
// DOCS/a.txt only; bravo's index must hold no live record under Docs/.
// Before, the records of Docs/a.txt and Docs/Sub/b.txt stayed live (the
// disk finds them under any case), alpha held both trees, and deleting
// the copy DOCS/ there could lose the content on both devices.
func TestCaselessDirCaseRenameFullScan(t *testing.T) {
	a, b, backing := caselessPair(t)
	writeDocs(t, b)
	a.start(b)
	b.start(a)
	waitFor(t, "alpha to get Docs", converge, func() bool { return fileIs(a, "Docs/Sub/b.txt", "y") })
	want := renameDocs(t, b, backing)
	b.rescan()
	d := waitTree(t, a.root, want, 8*time.Second)
	for _, p := range []string{"Docs", "Docs/a.txt", "Docs/Sub", "Docs/Sub/b.txt"} {
		if r, ok, err := b.store.Local("f", p); err == nil && ok && !r.Deleted {
			t.Errorf("bravo's index still has a live record of %s", p)
		}
	}
	if d != "" {
		t.Fatalf("alpha's tree 8 s after bravo renamed Docs to DOCS and rescanned:\n%s", d)
	}
}

// TestCaselessDirCaseRenameWatch: the same with the watcher.
func TestCaselessDirCaseRenameWatch(t *testing.T) {
	a, b, backing := caselessPair(t)
	writeDocs(t, b)
	startWatching(t, a, b, nil)
	waitFor(t, "alpha to get Docs", converge, func() bool { return fileIs(a, "Docs/Sub/b.txt", "y") })
	want := renameDocs(t, b, backing)
	d := waitTree(t, a.root, want, 8*time.Second)
	if d != "" {
		t.Fatalf("alpha's tree 8 s after bravo renamed Docs to DOCS:\n%s", d)
	}
}

// TestCaselessBadNamesAfterPeerIndexReset: alpha's "What?.mp3" is counted
// as a bad name on bravo (vfat). alpha then loses its index (a new epoch:
// bravo drops alpha's records) and, meanwhile, the file is gone from alpha.
// Nothing of alpha's names What?.mp3 any more: bravo's status must not
// count it.
func TestCaselessBadNamesAfterPeerIndexReset(t *testing.T) {
	a, b := badNameCounted(t)
	a.stop()
	if err := os.RemoveAll(filepath.Join(a.home, "index")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(a.root, "What?.mp3")); err != nil {
		t.Fatal(err)
	}
	a.write("new.mp3", []byte("new"))
	a.start(b)
	waitFor(t, "bravo to get new.mp3", converge, func() bool { return fileIs(b, "new.mp3", "new") })
	waitIdle(t, b)
	b.rescan()
	time.Sleep(time.Second)
	waitIdle(t, b)
	if _, ok, err := b.store.Remote("f", a.id, "What?.mp3"); err != nil || ok {
		t.Fatalf("bravo still has alpha's record of What?.mp3 (%v, %v): the index reset did not take", ok, err)
	}
	if n := badNames(b); n != 0 {
		t.Fatalf("bravo's status counts %d bad names; alpha has none any more", n)
	}
}

// TestCaselessBadNamesUnshared: the folder is no longer shared with alpha,
// whose What?.mp3 was counted: the count drops. (It stayed: a path left
// the count only when evaluated again, and nothing evaluated it.)
func TestCaselessBadNamesUnshared(t *testing.T) {
	a, b := badNameCounted(t)
	b.eng.Configure([]PeerConfig{{ID: a.id, Name: a.name}}, []FolderConfig{{ID: "f", Root: b.root}})
	b.write("local.txt", []byte("l"))
	b.rescan()
	time.Sleep(time.Second)
	waitIdle(t, b)
	if n := badNames(b); n != 0 {
		t.Fatalf("bravo's status counts %d bad names of a peer the folder is no longer shared with", n)
	}
}

// TestCaselessNamesLeftovers: probes leave nothing in .syncd/names (vfat),
// and an ordinary folder with a separate .SYNCD directory is not taken as
// ignoring case.
func TestCaselessNamesLeftovers(t *testing.T) {
	a, b, backing := caselessPairWith(t, caseless.Options{VfatNames: true})
	a.write("Music/What?.mp3", []byte("what"))
	a.write("Music/Track 1.", []byte("one"))
	a.write("Music/Track 2 ", []byte("two"))
	a.write("ab:c/z", []byte("z"))
	a.write("ok.mp3", []byte("fine"))
	a.start(b)
	b.start(a)
	waitFor(t, "bravo to get ok.mp3", converge, func() bool { return fileIs(b, "ok.mp3", "fine") })
	waitIdle(t, b)
	waitFor(t, "status to count 5 bad names", 5*time.Second, func() bool { return badNames(b) == 5 })
	t.Logf("bad names: %d", badNames(b))
	ents, err := os.ReadDir(filepath.Join(backing, ".syncd", "names"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left in .syncd/names: %q", e.Name())
	}
	plain := t.TempDir()
	for _, d := range []string{".syncd", ".SYNCD"} {
		if err := os.Mkdir(filepath.Join(plain, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if index.IgnoresCase(plain) {
		t.Errorf("alpha's ordinary folder with .SYNCD is taken as ignoring case")
	}
}

// badNameCounted starts alpha, with What?.mp3 and ok.mp3, and bravo, on a
// vfat-like disk, and waits until bravo has ok.mp3 and counts What?.mp3.
func badNameCounted(t *testing.T) (a, b *testDev) {
	t.Helper()
	a, b, _ = caselessPairWith(t, caseless.Options{VfatNames: true})
	a.write("What?.mp3", []byte("what"))
	a.write("ok.mp3", []byte("fine"))
	a.start(b)
	b.start(a)
	waitFor(t, "bravo to get ok.mp3", converge, func() bool { return fileIs(b, "ok.mp3", "fine") })
	waitIdle(t, b)
	waitFor(t, "status to count 1 bad name", 5*time.Second, func() bool { return badNames(b) == 1 })
	return a, b
}

// writeDocs makes Docs/a.txt ("x") and Docs/Sub/b.txt ("y") on d.
func writeDocs(t *testing.T, d *testDev) {
	t.Helper()
	d.write("Docs/a.txt", []byte("x"))
	d.write("Docs/Sub/b.txt", []byte("y"))
}

// renameDocs waits until d is idle, renames its Docs to DOCS (through
// another name: the only way on Linux's file systems that ignore case) and
// returns the tree the peer should then have.
func renameDocs(t *testing.T, d *testDev, backing string) map[string]string {
	t.Helper()
	waitIdle(t, d)
	if err := os.Rename(filepath.Join(d.root, "Docs"), filepath.Join(d.root, "tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(d.root, "tmp"), filepath.Join(d.root, "DOCS")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"DOCS": "dir", "DOCS/a.txt": "x", "DOCS/Sub": "dir", "DOCS/Sub/b.txt": "y"}
	if diff := treeDiff("bravo", backingTree(t, backing), "want", want); diff != "" {
		t.Fatalf("the view did not rename: %s", diff)
	}
	return want
}
