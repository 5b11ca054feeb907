package peer

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holds reports whether a regular file under root holds exactly want; with
// outsideTrash, only files outside .syncd count (a conflict copy or the
// file itself, not the trash).
func holds(root, want string, outsideTrash bool) bool {
	found := false
	walkFiles(root, func(p string, _ os.FileInfo) {
		if outsideTrash && strings.Contains(p, string(filepath.Separator)+".syncd"+string(filepath.Separator)) {
			return
		}
		if b, err := os.ReadFile(p); err == nil && string(b) == want {
			found = true
		}
	})
	return found
}

// oneShot is a test's action that runs once, the first time it is offered
// after arm, and records that it ran.
type oneShot struct {
	armed, fired atomic.Bool
	once         sync.Once
}

func (s *oneShot) arm() { s.armed.Store(true) }

// offer runs fn if s is armed and fn has not run yet.
func (s *oneShot) offer(fn func()) {
	if s.armed.Load() {
		s.once.Do(func() { fn(); s.fired.Store(true) })
	}
}

// saveByRename saves data at target the way editors do: a new file
// renamed over it.
func saveByRename(t *testing.T, target, data string) {
	tmp := filepath.Join(filepath.Dir(target), ".save-"+filepath.Base(target))
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, target); err != nil {
		t.Error(err)
	}
}

// TestSaveAfterFinalCheckKept: the user saves doc.txt on bravo right after
// the final check has kept what was there and before alpha's new version
// takes its place (the afterFinalCheck hook). The save is never replaced
// unseen: bravo keeps alpha's version at doc.txt and the save as a
// conflict copy (or, for a save made in place of a conflict copy just
// made, at least in the trash).
func TestSaveAfterFinalCheckKept(t *testing.T) {
	cases := []struct {
		name         string
		unscanned    bool // bravo has an unscanned edit when alpha's version arrives
		inPlace      bool // the save writes the old file instead of renaming a new one over it
		outsideTrash bool // the save must be a conflict copy, not only in the trash
	}{
		{"rename over the file linked into the trash", false, false, true},
		{"write in place after the link", false, true, true},
		{"save after an unscanned edit became a conflict copy", true, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var save1 oneShot
			const save = "bravo's save after the final check"
			_, a, b := startTwo(t, func(d *testDev, o *Options) {
				if d.name != "bravo" {
					return
				}
				target := filepath.Join(d.root, "doc.txt")
				o.hooks.afterFinalCheck = func(p string) {
					if p != "doc.txt" {
						return
					}
					save1.offer(func() {
						if !tc.inPlace {
							saveByRename(t, target, save)
						} else if err := os.WriteFile(target, []byte(save), 0o644); err != nil {
							t.Error(err)
						}
					})
				}
			})
			syncedFile(t, a, b, "doc.txt", []byte("v1"))
			if tc.unscanned {
				b.write("doc.txt", []byte("bravo's edit, unscanned"))
			}
			save1.arm()
			a.write("doc.txt", []byte("v2 from alpha"))
			a.rescan()
			waitFor(t, "the save to be made after bravo's final check", converge, save1.fired.Load)
			waitFor(t, "alpha's version on bravo", converge, func() bool { return fileIs(b, "doc.txt", "v2 from alpha") })
			if !holds(b.root, save, tc.outsideTrash) {
				where := "anywhere on bravo, trash included"
				if tc.outsideTrash {
					where = "in a conflict copy on bravo"
				}
				t.Errorf("the save is not %s: replaced by the new version", where)
			}
			if tc.unscanned && !holds(b.root, "bravo's edit, unscanned", true) {
				t.Error("bravo's unscanned edit is not in a conflict copy")
			}
			if !tc.inPlace && !tc.unscanned && !holds(b.root, "v1", false) { // else the user wrote over it
				t.Error("the old version v1 is not in bravo's trash")
			}
		})
	}
}

// onLog is a log handler that runs fn when a record whose message holds msg
// is handled: a way to act right where the puller logs.
type onLog struct {
	slog.Handler
	msg string
	fn  func()
}

func (h *onLog) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		h.fn()
	}
	return h.Handler.Handle(ctx, r)
}

func (h *onLog) WithAttrs(a []slog.Attr) slog.Handler {
	return &onLog{h.Handler.WithAttrs(a), h.msg, h.fn}
}

func (h *onLog) WithGroup(g string) slog.Handler {
	return &onLog{h.Handler.WithGroup(g), h.msg, h.fn}
}

// TestSaveBeforeDirectoryTakesName: alpha replaces file x by a directory
// while bravo has an unscanned edit of x. Bravo's edit becomes a conflict
// copy; the user saves x again right then (at the conflict's log line),
// before the directory is made. That save is kept too, never removed to
// make room for the directory, and so is alpha's directory.
func TestSaveBeforeDirectoryTakesName(t *testing.T) {
	var save2 oneShot
	const save = "bravo's second save"
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		target := filepath.Join(d.root, "x")
		o.Logger = slog.New(&onLog{o.Logger.Handler(), "conflict: kept the other version", func() {
			save2.offer(func() {
				if err := os.WriteFile(target, []byte(save), 0o644); err != nil {
					t.Error(err)
				}
			})
		}})
	})
	syncedFile(t, a, b, "x", []byte("v1"))
	b.write("x", []byte("bravo's first edit, unscanned"))
	save2.arm()
	if err := os.Remove(filepath.Join(a.root, "x")); err != nil {
		t.Fatal(err)
	}
	a.write("x/inside.txt", []byte("in the directory"))
	a.rescan()
	waitFor(t, "bravo's conflict copy", converge, save2.fired.Load)
	// Which of x's versions wins depends on whether bravo's scan of the
	// save comes before its next pass (then the save is concurrent with
	// alpha's directory); either way nothing is lost.
	waitConverged(t, converge, a, b)
	for _, want := range []string{"in the directory", "bravo's first edit, unscanned", save} {
		if !holds(b.root, want, false) {
			t.Errorf("%q is nowhere on bravo, trash included", want)
		}
	}
}

// TestSaveOverSymlinkKept: alpha points symlink ln elsewhere; right after
// bravo's final check of ln, the user replaces ln by a file. The new link
// takes ln's place and the user's file is kept as a conflict copy.
func TestSaveOverSymlinkKept(t *testing.T) {
	var save3 oneShot
	const save = "a file saved where the link was"
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		target := filepath.Join(d.root, "ln")
		o.hooks.afterFinalCheck = func(p string) {
			if p == "ln" {
				save3.offer(func() { saveByRename(t, target, save) })
			}
		}
	})
	if err := os.Symlink("one", filepath.Join(a.root, "ln")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	save3.arm()
	if err := os.Remove(filepath.Join(a.root, "ln")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("two", filepath.Join(a.root, "ln")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "bravo's ln to point to two", converge, func() bool {
		target, err := os.Readlink(filepath.Join(b.root, "ln"))
		return err == nil && target == "two"
	})
	if !save3.fired.Load() {
		t.Fatal("the save was not made after bravo's final check")
	}
	if !holds(b.root, save, true) {
		t.Error("the file saved where the link was is not in a conflict copy on bravo")
	}
}

// TestUnscannedSymlinkRetargetKept: bravo points symlink ln elsewhere and
// has not scanned it when alpha's new target arrives: bravo's link is kept
// as a conflict copy (not only in the trash), alpha's takes ln.
func TestUnscannedSymlinkRetargetKept(t *testing.T) {
	_, a, b := pair2(t)
	if err := os.Symlink("one", filepath.Join(a.root, "ln")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	relink := func(d *testDev, target string) {
		t.Helper()
		p := filepath.Join(d.root, "ln")
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	relink(b, "bravo's target") // not scanned
	relink(a, "two")
	a.rescan()
	waitFor(t, "bravo's ln to point to two", converge, func() bool {
		target, err := os.Readlink(filepath.Join(b.root, "ln"))
		return err == nil && target == "two"
	})
	kept := false
	ents, err := os.ReadDir(b.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(b.root, e.Name())); err == nil && target == "bravo's target" {
			kept = true
		}
	}
	if !kept {
		t.Error("bravo's unscanned link is not kept as a conflict copy")
	}
}

// TestDirReplacedByFileKeepsNewInside: while apart, alpha replaces
// directory d by a file and bravo adds d/new.txt. Once they meet, bravo's
// new file is not put in the trash with the directory: the directory is
// kept as a conflict copy, which both devices then have, and alpha's file
// takes d.
func TestDirReplacedByFileKeepsNewInside(t *testing.T) {
	n, a, b := startTwo(t, nil)
	a.write("d/old.txt", []byte("old"))
	a.rescan()
	waitConverged(t, converge, a, b)
	offline(n, a, b, func() {
		if err := os.RemoveAll(filepath.Join(a.root, "d")); err != nil {
			t.Fatal(err)
		}
		a.write("d", []byte("d is a file now"))
		b.write("d/new.txt", []byte("new on b"))
	})
	waitFor(t, "bravo's new file in a conflict copy on both", converge, func() bool {
		return holds(a.root, "new on b", true) && holds(b.root, "new on b", true)
	})
	waitConverged(t, converge, a, b)
	if !fileIs(b, "d", "d is a file now") {
		t.Errorf("bravo's d = %q, want alpha's file", readFile(t, b, "d"))
	}
}

// TestDirReplacedByFileTrashesDeleted: alpha replaces directory d, whose
// content it deleted, by a file; bravo has nothing new in d. The directory
// goes to bravo's trash as before, with no conflict copy.
func TestDirReplacedByFileTrashesDeleted(t *testing.T) {
	_, a, b := pair2(t)
	a.write("d/old.txt", []byte("old"))
	a.rescan()
	waitConverged(t, converge, a, b)
	if err := os.RemoveAll(filepath.Join(a.root, "d")); err != nil {
		t.Fatal(err)
	}
	a.write("d", []byte("d is a file now"))
	a.rescan()
	waitFor(t, "alpha's file d on bravo", converge, func() bool { return fileIs(b, "d", "d is a file now") })
	tr := waitConverged(t, converge, a, b)
	if cc := conflictCopies(tr); len(cc) > 0 {
		t.Errorf("conflict copies %v, want none", cc)
	}
	if !holds(b.root, "old", false) {
		t.Error("d/old.txt is not in bravo's trash")
	}
}

// TestEditDuringMetadataPullSyncs: alpha changes only the mtime of f.txt;
// as bravo is about to set it, the user writes f.txt in place with the
// same size. The new mtime must not hide that edit: it reaches alpha.
func TestEditDuringMetadataPullSyncs(t *testing.T) {
	var edit1 oneShot
	const edit = "edited on bravo!" // as long as alpha's content
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		target := filepath.Join(d.root, "f.txt")
		o.hooks.beforeMetaChange = func(p string) {
			if p != "f.txt" {
				return
			}
			edit1.offer(func() {
				file, err := os.OpenFile(target, os.O_WRONLY, 0)
				if err == nil {
					_, err = file.WriteAt([]byte(edit), 0)
					file.Close()
				}
				if err != nil {
					t.Error(err)
				}
			})
		}
	})
	syncedFile(t, a, b, "f.txt", []byte("written on alpha"))
	edit1.arm()
	later := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(a.root, "f.txt"), later, later); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "the edit during bravo's metadata change", converge, edit1.fired.Load)
	waitFor(t, "bravo's edit on alpha", converge, func() bool { return holds(a.root, edit, true) })
}
