package peer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/syncd-project/syncd/peer/internal/caseless"
)

// TestCaselessWatchDeleteOtherSpelling: with the watcher on, a file of
// the caseless device deleted through another spelling (rm README.MD for
// readme.md) must reach the peer.
func TestCaselessWatchDeleteOtherSpelling(t *testing.T) {
	a, b, _ := caselessPair(t)
	if err := os.WriteFile(filepath.Join(b.root, "readme.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.root, "keep.txt"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	startWatching(t, a, b, nil)
	waitFor(t, "alpha to get readme.md", converge, func() bool { return fileIs(a, "readme.md", "x") })
	waitIdle(t, b)
	if err := os.Remove(filepath.Join(b.root, "README.MD")); err != nil {
		t.Fatal(err)
	}
	if d := waitTree(t, a.root, map[string]string{"keep.txt": "k"}, 8*time.Second); d != "" {
		t.Fatalf("alpha's tree 8 s after bravo deleted README.MD (its readme.md):\n%s", d)
	}
}

// TestCaselessWatchDeleteDirOtherSpelling: rm -r DOCS for Docs.
func TestCaselessWatchDeleteDirOtherSpelling(t *testing.T) {
	a, b, _ := caselessPair(t)
	if err := os.MkdirAll(filepath.Join(b.root, "Docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.root, "Docs", "a.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.root, "keep.txt"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	startWatching(t, a, b, nil)
	waitFor(t, "alpha to get Docs/a.txt", converge, func() bool { return fileIs(a, "Docs/a.txt", "x") })
	waitIdle(t, b)
	if err := os.RemoveAll(filepath.Join(b.root, "DOCS")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.root, "Docs")); err == nil {
		t.Fatal("Docs still there")
	}
	if d := waitTree(t, a.root, map[string]string{"keep.txt": "k"}, 8*time.Second); d != "" {
		t.Fatalf("alpha's tree 8 s after bravo removed DOCS (its Docs):\n%s", d)
	}
}

// TestCaselessWatchCaseRename: bravo renames a.txt to A.txt (a case-only
// rename of a file, which the caseless view, like macOS, stores): alpha
// must end with A.txt only, not both names.
func TestCaselessWatchCaseRename(t *testing.T) {
	a, b, backing := caselessPair(t)
	if err := os.WriteFile(filepath.Join(b.root, "a.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	startWatching(t, a, b, nil)
	waitFor(t, "alpha to get a.txt", converge, func() bool { return fileIs(a, "a.txt", "x") })
	waitIdle(t, b)
	if err := os.Rename(filepath.Join(b.root, "a.txt"), filepath.Join(b.root, "A.txt")); err != nil {
		t.Fatal(err)
	}
	if d := treeDiff("bravo", backingTree(t, backing), "want", map[string]string{"A.txt": "x"}); d != "" {
		t.Fatalf("the view did not rename: %s", d)
	}
	if d := waitTree(t, a.root, map[string]string{"A.txt": "x"}, 8*time.Second); d != "" {
		t.Fatalf("alpha's tree 8 s after bravo renamed a.txt to A.txt:\n%s", d)
	}
}

// TestCaselessWatchRenameOtherSpelling: mv README.MD notes.md (for
// readme.md) on bravo: alpha must end with notes.md only.
func TestCaselessWatchRenameOtherSpelling(t *testing.T) {
	a, b, _ := caselessPair(t)
	if err := os.WriteFile(filepath.Join(b.root, "readme.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	startWatching(t, a, b, nil)
	waitFor(t, "alpha to get readme.md", converge, func() bool { return fileIs(a, "readme.md", "x") })
	waitIdle(t, b)
	if err := os.Rename(filepath.Join(b.root, "README.MD"), filepath.Join(b.root, "notes.md")); err != nil {
		t.Fatal(err)
	}
	if d := waitTree(t, a.root, map[string]string{"notes.md": "x"}, 8*time.Second); d != "" {
		t.Fatalf("alpha's tree 8 s after bravo renamed README.MD (its readme.md) to notes.md:\n%s", d)
	}
}

func reviewPasses(d *testDev) uint64 {
	f := d.eng.folder("f")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pass
}

// TestCaselessHeldAndFailingDeleteSpin: a held name and a deletion that
// keeps failing (here a file the kernel refuses to move: immutable; on a
// real disk an I/O error, a read-only remount...). A failed pull is retried
// with backoff (1 s, 2 s, ...). Before, the kick that pull gave when a
// pass held a path and had deletions started the next pass at once, every
// time (over a thousand passes a second); now only a deletion that frees
// a held name kicks.
func TestCaselessHeldAndFailingDeleteSpin(t *testing.T) { reviewFailingDelete(t, true) }

// TestCaselessFailingDeleteNoHeld is the control: the same without a
// held name backs off.
func TestCaselessFailingDeleteNoHeld(t *testing.T) { reviewFailingDelete(t, false) }

func reviewFailingDelete(t *testing.T, withHeld bool) {
	a, b, backing := caselessPair(t)
	a.write("A.txt", []byte("upper"))
	held := 0
	if withHeld {
		a.write("a.txt", []byte("lower"))
		held = 1
	}
	a.write("gone.txt", []byte("to be deleted"))
	a.start(b)
	b.start(a)
	waitFor(t, "bravo to get A.txt and gone.txt", converge, func() bool {
		return fileIs(b, "A.txt", "upper") && fileIs(b, "gone.txt", "to be deleted")
	})
	waitIdle(t, b)
	waitFor(t, "the clashes", 5*time.Second, func() bool { return caseClashes(b) == held })
	imm := filepath.Join(backing, "gone.txt")
	if out, err := exec.Command("chattr", "+i", imm).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chattr +i: %v %s", err, out)
		}
		t.Skipf("chattr +i (CI=true makes this fail): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", imm).Run() })
	if err := os.Remove(filepath.Join(a.root, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "bravo to fail the deletion", converge, func() bool { return countLines(b, "pull failed") > 0 })
	p0 := reviewPasses(b)
	time.Sleep(3 * time.Second)
	p1 := reviewPasses(b)
	if p1-p0 > 10 {
		t.Fatalf("bravo ran %d pull passes in 3 s (a failing deletion is retried at 1 s, 2 s, 4 s...)", p1-p0)
	}
}

// TestCaselessRefillTree: while bravo's pass is held on a file, alpha
// adds Photos/ (650 files, two record batches) and photos/ (21 files, one
// named as one of Photos/): they join the running pass (refill).
func TestCaselessRefillTree(t *testing.T) {
	a, b, backing := caselessPair(t)
	h := newHold(t, "first.bin")
	a.write("first.bin", []byte("v1"))
	a.start(b)
	if err := b.startWith(func(o *Options) { o.hooks.applyFile = h.hook }, a); err != nil {
		t.Fatal(err)
	}
	h.reached(t)
	want := map[string]string{"first.bin": "v1", "Photos": "dir"}
	for i := range 650 {
		p := fmt.Sprintf("Photos/f%03d.jpg", i)
		a.write(p, []byte("P"+p))
		want[p] = "P" + p
	}
	for i := range 20 {
		a.write(fmt.Sprintf("photos/g%02d.jpg", i), []byte("small"))
	}
	a.write("photos/f001.jpg", []byte("other f001"))
	alphaBefore := backingTree(t, a.root)
	a.rescan()
	waitFor(t, "bravo to have alpha's records", converge, func() bool {
		_, ok, _ := b.store.Remote("f", a.id, "photos/g19.jpg")
		return ok
	})
	time.Sleep(200 * time.Millisecond)
	close(h.release)
	if d := waitTree(t, backing, want, converge); d != "" {
		t.Fatalf("bravo's disk:\n%s", d)
	}
	waitIdle(t, b)
	waitFor(t, "22 clashes", 5*time.Second, func() bool { return caseClashes(b) == 22 })
	time.Sleep(300 * time.Millisecond)
	if d := treeDiff("alpha", backingTree(t, a.root), "before", alphaBefore); d != "" {
		t.Errorf("alpha changed:\n%s", d)
	}
	// Restart: the same clashes, nothing recorded for them.
	b.stop()
	if err := b.startWith(nil, a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "22 clashes after the restart", 10*time.Second, func() bool { return caseClashes(b) == 22 })
	waitIdle(t, b)
	for _, p := range []string{"photos", "photos/f001.jpg", "photos/g00.jpg"} {
		if r, ok, _ := b.store.Local("f", p); ok {
			t.Errorf("bravo has a local record of held %s: %+v", p, r)
		}
	}
	if d := treeDiff("bravo", backingTree(t, backing), "want", want); d != "" {
		t.Errorf("bravo's disk after the restart:\n%s", d)
	}
	if d := treeDiff("alpha", backingTree(t, a.root), "before", alphaBefore); d != "" {
		t.Errorf("alpha changed:\n%s", d)
	}
}

// TestCaselessDirCaseRename: alpha renames Photos to photos (content
// unchanged): bravo ends with photos/, alpha loses nothing.
func TestCaselessDirCaseRename(t *testing.T) {
	a, b, backing := caselessPair(t)
	a.write("Photos/x.jpg", []byte("x"))
	a.write("Photos/y.jpg", []byte("y"))
	a.write("Photos/Sub/z.jpg", []byte("z"))
	a.start(b)
	b.start(a)
	waitFor(t, "bravo to get Photos", converge, func() bool { return fileIs(b, "Photos/Sub/z.jpg", "z") })
	waitIdle(t, b)
	if err := os.Rename(filepath.Join(a.root, "Photos"), filepath.Join(a.root, "photos")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	want := map[string]string{"photos": "dir", "photos/x.jpg": "x", "photos/y.jpg": "y", "photos/Sub": "dir", "photos/Sub/z.jpg": "z"}
	if d := waitTree(t, backing, want, converge); d != "" {
		t.Fatalf("bravo's disk:\n%s", d)
	}
	waitIdle(t, b)
	waitFor(t, "no clash", 5*time.Second, func() bool { return caseClashes(b) == 0 })
	time.Sleep(300 * time.Millisecond)
	if d := treeDiff("alpha", backingTree(t, a.root), "want", want); d != "" {
		t.Errorf("alpha:\n%s", d)
	}
}

// TestCaselessThree: alpha and charlie on ordinary directories, bravo
// caseless, all connected: charlie gets everything of alpha's.
func TestCaselessThree(t *testing.T) {
	mnt, backing := caseless.MountForTest(t)
	n := newTestNet(t)
	a, b, c := n.addDevice("alpha"), n.addDevice("bravo"), n.addDevice("charlie")
	b.root = mnt
	a.write("A.txt", []byte("upper"))
	a.write("a.txt", []byte("lower"))
	a.write("Dir/x", []byte("x"))
	a.write("dir/y", []byte("y"))
	if err := os.WriteFile(filepath.Join(b.root, "readme.md"), []byte("bravo's"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.write("README.md", []byte("charlie's"))
	a.start(b, c)
	b.start(a, c)
	c.start(a, b)
	want := map[string]string{"A.txt": "upper", "a.txt": "lower", "Dir": "dir", "Dir/x": "x", "dir": "dir", "dir/y": "y", "readme.md": "bravo's", "README.md": "charlie's"}
	for _, d := range []*testDev{a, c} {
		if diff := waitTree(t, d.root, want, converge); diff != "" {
			t.Fatalf("%s:\n%s", d.name, diff)
		}
	}
	waitIdle(t, b)
	waitFor(t, "4 clashes", 5*time.Second, func() bool { return caseClashes(b) == 4 })
	time.Sleep(500 * time.Millisecond)
	for _, d := range []*testDev{a, c} {
		if diff := treeDiff(d.name, backingTree(t, d.root), "want", want); diff != "" {
			t.Errorf("%s later:\n%s", d.name, diff)
		}
	}
	wb := map[string]string{"A.txt": "upper", "Dir": "dir", "Dir/x": "x", "readme.md": "bravo's"}
	if diff := treeDiff("bravo", backingTree(t, backing), "want", wb); diff != "" {
		t.Errorf("bravo:\n%s", diff)
	}
}

// TestCaselessFileToDir: alpha replaces file Foo by directory foo/ (and
// directory Bar/ by file bar).
func TestCaselessFileToDir(t *testing.T) {
	a, b, backing := caselessPair(t)
	a.write("Foo", []byte("file"))
	a.write("Bar/x", []byte("x"))
	a.start(b)
	b.start(a)
	waitFor(t, "bravo", converge, func() bool { return fileIs(b, "Foo", "file") && fileIs(b, "Bar/x", "x") })
	waitIdle(t, b)
	os.Remove(filepath.Join(a.root, "Foo"))
	a.write("foo/y", []byte("y"))
	os.RemoveAll(filepath.Join(a.root, "Bar"))
	a.write("bar", []byte("bar"))
	a.rescan()
	want := map[string]string{"foo": "dir", "foo/y": "y", "bar": "bar"}
	if d := waitTree(t, backing, want, converge); d != "" {
		t.Fatalf("bravo:\n%s", d)
	}
	waitIdle(t, b)
	waitFor(t, "no clash", 5*time.Second, func() bool { return caseClashes(b) == 0 })
	time.Sleep(300 * time.Millisecond)
	if d := treeDiff("alpha", backingTree(t, a.root), "want", want); d != "" {
		t.Errorf("alpha:\n%s", d)
	}
}

// TestCaselessSymlink: a symlink Link and a file link on alpha.
func TestCaselessSymlink(t *testing.T) {
	a, b, backing := caselessPair(t)
	a.write("link", []byte("file"))
	if err := os.Symlink("target", filepath.Join(a.root, "Link")); err != nil {
		t.Fatal(err)
	}
	a.write("d/X", []byte("X"))
	if err := os.Symlink("elsewhere", filepath.Join(a.root, "d", "x")); err != nil {
		t.Fatal(err)
	}
	a.start(b)
	b.start(a)
	waitFor(t, "bravo", converge, func() bool {
		fi, err := os.Lstat(filepath.Join(backing, "Link"))
		return err == nil && fi.Mode()&os.ModeSymlink != 0 && fileIs(b, "d/X", "X")
	})
	waitIdle(t, b)
	waitFor(t, "2 clashes", 5*time.Second, func() bool { return caseClashes(b) == 2 })
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Lstat(filepath.Join(backing, "link")); err == nil {
		t.Errorf("bravo has link too")
	}
	if b, err := os.ReadFile(filepath.Join(a.root, "link")); err != nil || string(b) != "file" {
		t.Errorf("alpha's link: %q %v", b, err)
	}
	if tg, err := os.Readlink(filepath.Join(a.root, "d", "x")); err != nil || tg != "elsewhere" {
		t.Errorf("alpha's d/x: %q %v", tg, err)
	}
}

// TestCaselessConflictNextToHeld: a.txt edited on both sides while
// alpha's A.txt is held on bravo.
func TestCaselessConflictNextToHeld(t *testing.T) {
	a, b, backing := caselessPair(t)
	a.write("a.txt", []byte("base"))
	a.start(b)
	b.start(a)
	waitFor(t, "bravo a.txt", converge, func() bool { return fileIs(b, "a.txt", "base") })
	waitIdle(t, b)
	a.write("A.txt", []byte("upper"))
	a.rescan()
	waitFor(t, "1 clash", converge, func() bool { return caseClashes(b) == 1 })
	a.net.setLink(a, b, false)
	a.write("a.txt", []byte("alpha's edit"))
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(b.root, "a.txt"), []byte("bravo's edit, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	b.rescan()
	time.Sleep(300 * time.Millisecond)
	a.net.setLink(a, b, true)
	var got map[string]string
	waitFor(t, "a conflict copy on both", converge, func() bool {
		ga, gb := backingTree(t, a.root), backingTree(t, backing)
		got = gb
		return len(conflictCopies(ga)) == 1 && len(conflictCopies(gb)) == 1 && ga["a.txt"] == gb["a.txt"]
	})
	waitIdle(t, b)
	time.Sleep(300 * time.Millisecond)
	ga, gb := backingTree(t, a.root), backingTree(t, backing)
	if ga["A.txt"] != "upper" {
		t.Errorf("alpha's A.txt = %q", ga["A.txt"])
	}
	if _, ok := gb["A.txt"]; ok {
		t.Errorf("bravo has A.txt: %v", gb)
	}
	cc := conflictCopies(gb)[0]
	if ga[cc] != gb[cc] || ga["a.txt"] != gb["a.txt"] {
		t.Errorf("trees: alpha %v bravo %v", ga, gb)
	}
	if c := caseClashes(b); c != 1 {
		t.Errorf("clashes %d, want 1 (%v)", c, got)
	}
}

// TestCaselessMoveOntoHeld: alpha moves docs/a.bin to B.bin while bravo
// has its own b.bin, and renames c.bin to C.bin (content unchanged).
func TestCaselessMoveOntoHeld(t *testing.T) {
	a, b, backing := caselessPair(t)
	data := randBytes(7, 200000)
	a.write("docs/a.bin", data)
	a.write("c.bin", randBytes(8, 100000))
	if err := os.WriteFile(filepath.Join(b.root, "b.bin"), []byte("bravo's own"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.start(b)
	b.start(a)
	waitFor(t, "bravo docs/a.bin", converge, func() bool { return fileIs(b, "docs/a.bin", string(data)) && fileIs(a, "b.bin", "bravo's own") })
	waitIdle(t, b)
	if err := os.Rename(filepath.Join(a.root, "docs/a.bin"), filepath.Join(a.root, "B.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.root, "c.bin"), filepath.Join(a.root, "C.bin")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	want := map[string]string{"docs": "dir", "b.bin": "bravo's own", "C.bin": string(randBytes(8, 100000))}
	if d := waitTree(t, backing, want, converge); d != "" {
		t.Fatalf("bravo:\n%s", d)
	}
	waitIdle(t, b)
	waitFor(t, "1 clash", 5*time.Second, func() bool { return caseClashes(b) == 1 })
	time.Sleep(300 * time.Millisecond)
	ga := backingTree(t, a.root)
	if ga["B.bin"] != string(data) || ga["b.bin"] != "bravo's own" || ga["C.bin"] == "" {
		t.Errorf("alpha: B.bin %d bytes, b.bin %q, C.bin %d bytes", len(ga["B.bin"]), ga["b.bin"], len(ga["C.bin"]))
	}
}
