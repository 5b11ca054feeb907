package peer

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd-project/syncd/peer/internal/caseless"
)

// caselessPair returns alpha, on an ordinary directory, and bravo, whose
// folder is on a file system that ignores case (a FUSE view, as a vfat or
// exFAT disk is), with bravo's files written by prep before it starts.
// Neither is started. The mount is made first, so that it is unmounted
// after bravo stops.
func caselessPair(t *testing.T) (a, b *testDev, backing string) {
	return caselessPairWith(t, caseless.Options{})
}

// caselessPairWith is caselessPair with options for the file system.
func caselessPairWith(t *testing.T, o caseless.Options) (a, b *testDev, backing string) {
	mnt, backing := caseless.MountForTestWith(t, o)
	n := newTestNet(t)
	a, b = n.addDevice("alpha"), n.addDevice("bravo")
	b.root = mnt
	return a, b, backing
}

// backingTree is the tree under root as stored (under a case-insensitive
// view's backing directory: each name as the file system keeps it): path
// -> content, "dir" for a directory, "link:TARGET" for a symlink, without
// .syncd. An entry that vanishes while it walks (a temp file renamed) is
// left out.
func backingTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case rel == ".":
		case rel == ".syncd":
			return filepath.SkipDir
		case de.IsDir():
			out[filepath.ToSlash(rel)] = "dir"
		case de.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "link:" + target
		default:
			if b, err := os.ReadFile(p); err == nil {
				out[filepath.ToSlash(rel)] = string(b)
			}
		}
		return nil
	})
	return out
}

// waitTree waits up to timeout for backingTree(root) to be want, and
// returns the last difference ("" once equal).
func waitTree(t *testing.T, root string, want map[string]string, timeout time.Duration) string {
	t.Helper()
	var diff string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if diff = treeDiff("got", backingTree(t, root), "want", want); diff == "" {
			return ""
		}
	}
	return diff
}

func caseClashes(d *testDev) int {
	for _, f := range d.eng.Status().Folders {
		if f.ID == "f" {
			return f.CaseClashes
		}
	}
	return -1
}

// TestCaseInsensitiveFolder: a peer's names that differ only in case
// (A.txt and a.txt, Photos/ and photos/, README.md against a readme.md
// here) never land on one another in a folder that ignores case: the
// first in path order syncs, the others are held and counted in status,
// what was here keeps its content, and the peer sees nothing deleted or
// renamed. Once a clash is resolved on the peer (a rename, a deletion),
// the held files sync, and the deletion of a held name deletes nothing
// here. A name whose case changed on the peer (a deletion and a new path
// that clash) syncs too. Before, the second name of each
// pair was written over the first, and bravo's scan then reported the
// peer's spellings as deleted.
func TestCaseInsensitiveFolder(t *testing.T) {
	a, b, backing := caselessPair(t)
	a.write("A.txt", []byte("upper"))
	a.write("a.txt", []byte("lower"))
	a.write("Photos/x.jpg", []byte("x"))
	a.write("photos/y.jpg", []byte("y"))
	a.write("README.md", []byte("alpha's"))
	a.write("ok.txt", []byte("fine"))
	if err := os.WriteFile(filepath.Join(b.root, "readme.md"), []byte("bravo's"), 0o644); err != nil {
		t.Fatal(err)
	}
	alphaBefore := backingTree(t, a.root)
	a.start(b)
	b.start(a)

	waitFor(t, "alpha to get readme.md", converge, func() bool { return fileIs(a, "readme.md", "bravo's") })
	waitFor(t, "bravo to hold 3 files", converge, func() bool {
		return fileIs(b, "ok.txt", "fine") && fileIs(b, "Photos/x.jpg", "x") && fileIs(b, "A.txt", "upper")
	})
	waitIdle(t, b)
	// Held: a.txt, photos (the directory) and photos/y.jpg against what
	// this pass made, README.md against bravo's own readme.md.
	waitFor(t, "status to count 4 clashes", 5*time.Second, func() bool { return caseClashes(b) == 4 })
	got := backingTree(t, backing)
	want := map[string]string{"A.txt": "upper", "Photos": "dir", "Photos/x.jpg": "x", "readme.md": "bravo's", "ok.txt": "fine"}
	if d := treeDiff("bravo's disk", got, "want", want); d != "" {
		t.Errorf("bravo's disk: %s", d)
	}
	for _, p := range []string{"a.txt", "photos/y.jpg", "README.md"} {
		if !strings.Contains(b.logText(), "path="+p+" ") {
			t.Errorf("bravo's log does not name %s as not synced", p)
		}
	}
	// Nothing of alpha's was deleted, renamed or overwritten.
	time.Sleep(500 * time.Millisecond)
	alphaBefore["readme.md"] = "bravo's"
	if d := treeDiff("alpha", backingTree(t, a.root), "alpha before", alphaBefore); d != "" {
		t.Errorf("alpha's tree changed: %s", d)
	}

	// Resolved on alpha: a rename and a deletion. A name whose case
	// changed (ok.txt to OK.txt) syncs in two passes: the deletion, then
	// the new name.
	if err := os.Rename(filepath.Join(a.root, "a.txt"), filepath.Join(a.root, "a2.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(a.root, "photos")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.root, "ok.txt"), filepath.Join(a.root, "OK.txt")); err != nil {
		t.Fatal(err)
	}
	// README.md's deletion deletes nothing here: bravo's readme.md is
	// another file.
	if err := os.Remove(filepath.Join(a.root, "README.md")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "bravo to get a2.txt and OK.txt", converge, func() bool {
		return fileIs(b, "a2.txt", "lower") && fileIs(b, "OK.txt", "fine")
	})
	waitIdle(t, b)
	waitFor(t, "status to count no clash", 5*time.Second, func() bool { return caseClashes(b) == 0 })
	got = backingTree(t, backing)
	want = map[string]string{"A.txt": "upper", "a2.txt": "lower", "Photos": "dir", "Photos/x.jpg": "x", "readme.md": "bravo's", "OK.txt": "fine"}
	if d := treeDiff("bravo's disk", got, "want", want); d != "" {
		t.Errorf("bravo's disk after the renames: %s", d)
	}
	for _, p := range []string{"ok.txt", "README.md"} {
		if _, err := os.Stat(filepath.Join(a.root, p)); err == nil {
			t.Errorf("alpha has %s again", p)
		}
	}
	if !fileIs(a, "readme.md", "bravo's") {
		t.Errorf("alpha's readme.md is gone or changed")
	}
}

// TestCaseInsensitiveWatch: in a folder that ignores case, a program that
// writes readme.md as README.MD makes the watcher report README.MD. The
// scan recorded that as a new file, a second record of readme.md, and
// peers got a copy named README.MD (deleted again by the next full
// scan). Now the scan spells each reported name as it is stored.
func TestCaseInsensitiveWatch(t *testing.T) {
	a, b, _ := caselessPair(t)
	if err := os.MkdirAll(filepath.Join(b.root, "Docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.root, "Docs", "readme.md"), []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	startWatching(t, a, b, nil)
	waitFor(t, "alpha to get Docs/readme.md", converge, func() bool { return fileIs(a, "Docs/readme.md", "first") })
	if err := os.WriteFile(filepath.Join(b.root, "DOCS", "README.MD"), []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.root, "docs", "New.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Docs": "dir", "Docs/readme.md": "edited", "Docs/New.txt": "new"}
	if diff := waitTree(t, a.root, want, converge); diff != "" {
		t.Fatalf("alpha's tree, %v after the writes:\n%s", converge, diff)
	}
	waitIdle(t, b)
	time.Sleep(300 * time.Millisecond)
	if d := treeDiff("alpha", backingTree(t, a.root), "want", want); d != "" {
		t.Errorf("alpha's tree once bravo is idle:\n%s", d)
	}
}

func badNames(d *testDev) int {
	for _, f := range d.eng.Status().Folders {
		if f.ID == "f" {
			return f.BadNames
		}
	}
	return -1
}

// TestVfatNames: on a disk that refuses some characters in names and drops
// a name's trailing dots (vfat, exFAT), a peer's files with such names
// are not pulled: they are counted in status, the log names them, and
// the peer's files stay as they are. Before, "Track 1." was written as
// "Track 1", which bravo's next scan sent back to alpha as a new file,
// and "What?.mp3" failed at every retry, with the folder never idle.
func TestVfatNames(t *testing.T) {
	a, b, backing := caselessPairWith(t, caseless.Options{VfatNames: true})
	a.write("Music/What?.mp3", []byte("what"))
	a.write("Music/Track 1.", []byte("one"))
	a.write("Live: 2020/a.mp3", []byte("live"))
	a.write("Music/ok.mp3", []byte("fine"))
	alphaBefore := backingTree(t, a.root)
	a.start(b)
	b.start(a)
	waitFor(t, "bravo to get Music/ok.mp3", converge, func() bool { return fileIs(b, "Music/ok.mp3", "fine") })
	waitIdle(t, b)
	// Held: What?.mp3, Track 1., the directory Live: 2020 and its file.
	waitFor(t, "status to count 4 bad names", 5*time.Second, func() bool { return badNames(b) == 4 })
	want := map[string]string{"Music": "dir", "Music/ok.mp3": "fine"}
	if d := treeDiff("bravo's disk", backingTree(t, backing), "want", want); d != "" {
		t.Errorf("bravo's disk:\n%s", d)
	}
	var said []string
	for line := range strings.Lines(b.logText()) {
		if strings.Contains(line, "does not take the name") {
			said = append(said, line)
		}
	}
	for _, name := range []string{"What?.mp3", "Track 1.", "Live: 2020"} {
		if !slices.ContainsFunc(said, func(l string) bool { return strings.Contains(l, name) }) {
			t.Errorf("bravo's log does not name %q as not synced", name)
		}
	}
	if len(said) != 3 {
		t.Errorf("bravo logged %d bad names, want 3 (each once):\n%s", len(said), strings.Join(said, ""))
	}
	time.Sleep(300 * time.Millisecond)
	if d := treeDiff("alpha", backingTree(t, a.root), "alpha before", alphaBefore); d != "" {
		t.Errorf("alpha's tree changed:\n%s", d)
	}
	// Renamed on alpha, it syncs, and the count follows.
	if err := os.Rename(filepath.Join(a.root, "Music", "Track 1."), filepath.Join(a.root, "Music", "Track 1.mp3")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "bravo to get Track 1.mp3", converge, func() bool { return fileIs(b, "Music/Track 1.mp3", "one") })
	waitIdle(t, b)
	waitFor(t, "status to count 3 bad names", 5*time.Second, func() bool { return badNames(b) == 3 })
}
