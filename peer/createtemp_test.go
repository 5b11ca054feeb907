package peer

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
)

// withoutOpenat2 makes openat2 fail with refusal until the test ends, and
// counts the tries.
func withoutOpenat2(t *testing.T, refusal error) *atomic.Int64 {
	var tried atomic.Int64
	old := openat2
	openat2 = func(int, string, *unix.OpenHow) (int, error) { tried.Add(1); return -1, refusal }
	t.Cleanup(func() { openat2 = old; noOpenat2.Store(false) })
	return &tried
}

// tempModes are createTemp's two ways: openat2, and the walk from the root
// where openat2 does not exist.
var tempModes = []struct {
	name  string
	setup func(t *testing.T)
}{
	{"openat2", func(*testing.T) {}},
	{"walk", func(t *testing.T) {
		withoutOpenat2(t, syscall.ENOSYS)
		noOpenat2.Store(true) // as after a first try: straight to the walk
	}},
}

// moveAside renames dir to dir-moved, as a user might in the middle of a
// pull, and if link is not "" puts a symlink to link in its place.
func moveAside(t *testing.T, dir, link string) {
	if err := os.Rename(dir, dir+"-moved"); err != nil {
		t.Error(err)
	}
	if link != "" {
		if err := os.Symlink(link, dir); err != nil {
			t.Error(err)
		}
	}
}

// namesIn lists the names in dir.
func namesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestCreateTemp opens temp files through new, existing and unsafe parents
// in both of createTemp's ways.
func TestCreateTemp(t *testing.T) {
	for _, m := range tempModes {
		t.Run(m.name, func(t *testing.T) {
			m.setup(t)
			root, outside := t.TempDir(), t.TempDir()
			f := newFolder(New(Options{}), FolderConfig{ID: "f", Root: root})
			var err error
			if f.rootFD, err = openRoot(root); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(f.rootFD)

			// New parents are made; a second open resumes.
			for i, wantFresh := range []bool{true, false} {
				fd, fresh, parent, err := f.createTemp("a/b/c/x.txt", "a/b/c/.syncd-tmp-x")
				if err != nil {
					t.Fatalf("open %d: %v", i, err)
				}
				parent.close()
				if i == 0 {
					fd.WriteString("kept")
				}
				fd.Close()
				if fresh != wantFresh {
					t.Errorf("open %d: fresh = %v, want %v", i, fresh, wantFresh)
				}
			}
			if data, err := os.ReadFile(filepath.Join(root, "a/b/c/.syncd-tmp-x")); err != nil || string(data) != "kept" {
				t.Errorf("temp file = %q, %v; want what the first open wrote", data, err)
			}

			// Unsafe: a symlinked parent, a file as parent, a symlink as
			// the temp file.
			if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(root, "a", ".syncd-tmp-y")); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ p, tmp string }{
				{"link/x.txt", "link/.syncd-tmp-x"},
				{"link/deeper/x.txt", "link/deeper/.syncd-tmp-x"},
				{"file/x.txt", "file/.syncd-tmp-x"},
				{"a/y.txt", "a/.syncd-tmp-y"},
			} {
				fd, _, parent, err := f.createTemp(c.p, c.tmp)
				if fd != nil {
					fd.Close()
					parent.close()
				}
				if !errors.Is(err, ErrUnsafePath) {
					t.Errorf("createTemp(%s) = %v, want ErrUnsafePath", c.tmp, err)
				}
			}
			for _, name := range namesIn(t, outside) {
				t.Errorf("%s was created outside the folder", name)
			}
		})
	}
}

// TestParentSwappedForSymlinkBeforeTemp swaps the directory a pulled file
// goes into for a symlink to a directory outside the folder just before
// the puller opens the file's temp file there (after its parents were
// found, the moment a check-then-open would lose): nothing may be created
// through the link, and the pull fails.
func TestParentSwappedForSymlinkBeforeTemp(t *testing.T) {
	for _, m := range tempModes {
		t.Run(m.name, func(t *testing.T) {
			m.setup(t)
			outside := t.TempDir()
			var swapped atomic.Bool
			_, a, b := startTwo(t, func(d *testDev, o *Options) {
				if d.name != "bravo" {
					return
				}
				o.hooks.beforeOpen = func(p string) {
					if p != "sub/x.txt" || swapped.Swap(true) {
						return
					}
					dir := filepath.Join(d.root, "sub")
					moveAside(t, dir, outside)
				}
			})
			a.write("sub/x.txt", []byte("must stay inside the folder"))
			a.rescan()
			waitFor(t, "bravo to refuse the pull of sub/x.txt", converge, func() bool {
				log := b.logText()
				return len(namesIn(t, outside)) > 0 || swapped.Load() && strings.Contains(log, "pull failed") && strings.Contains(log, "sub/x.txt")
			})
			for _, name := range namesIn(t, outside) {
				t.Errorf("%s was created outside the folder, through the symlink", name)
			}
		})
	}
}

// TestParentSwappedForSymlinkBeforeCommit swaps the directory of a pulled
// file for a symlink to a directory outside the folder after the file is
// complete in its temp file, just before the commit renames it. Outside
// waits a decoy of the temp file's exact name: the rename must not move it
// in (or fail and remove it), and nothing may be created there. The file
// goes into the directory it was pulled into, now under its new name.
func TestParentSwappedForSymlinkBeforeCommit(t *testing.T) {
	for _, m := range tempModes {
		t.Run(m.name, func(t *testing.T) {
			m.setup(t)
			outside := t.TempDir()
			var decoy atomic.Value // its name
			_, a, b := startTwo(t, func(d *testDev, o *Options) {
				if d.name != "bravo" {
					return
				}
				o.hooks.beforeFinalCheck = func(p string) {
					if p != "sub/x.txt" || decoy.Load() != nil {
						return
					}
					dir := filepath.Join(d.root, "sub")
					temps, err := filepath.Glob(filepath.Join(dir, ".syncd-tmp-x.txt-*"))
					if err != nil || len(temps) != 1 {
						t.Errorf("temp files in %s: %v, %v; want one", dir, temps, err)
						decoy.Store("")
						return
					}
					name := filepath.Base(temps[0])
					if err := os.WriteFile(filepath.Join(outside, name), []byte("decoy"), 0o600); err != nil {
						t.Error(err)
					}
					moveAside(t, dir, outside)
					decoy.Store(name)
				}
			})
			a.write("sub/x.txt", []byte("must stay inside the folder"))
			a.rescan()
			moved := filepath.Join(b.root, "sub-moved", "x.txt")
			waitFor(t, "bravo to place sub/x.txt in the moved directory", converge, func() bool {
				_, err := os.Lstat(moved)
				return err == nil
			})
			if data, err := os.ReadFile(moved); err != nil || string(data) != "must stay inside the folder" {
				t.Errorf("%s = %q, %v; want the pulled content", moved, data, err)
			}
			name, _ := decoy.Load().(string)
			for _, n := range namesIn(t, outside) {
				if n != name {
					t.Errorf("%s was created outside the folder, through the symlink", n)
				}
			}
			if data, err := os.ReadFile(filepath.Join(outside, name)); err != nil || string(data) != "decoy" {
				t.Errorf("decoy %s = %q, %v; want it untouched", name, data, err)
			}
		})
	}
}

// TestParentMovedBeforeFinalCheckOfUpdate pulls a new version of a file
// that exists on the receiver. Just before the final check the user saves
// an edit of it (not scanned yet) and renames its directory, and in the
// second case puts a symlink to a directory outside in its place. The
// final check and the rename go through the directory held open, so the
// edit is kept as a conflict copy next to the new version in the moved
// directory, and nothing outside the folder is touched.
func TestParentMovedBeforeFinalCheckOfUpdate(t *testing.T) {
	for _, withLink := range []bool{false, true} {
		name := "renamed"
		if withLink {
			name = "swapped for a symlink"
		}
		t.Run(name, func(t *testing.T) {
			outside := t.TempDir()
			if err := os.WriteFile(filepath.Join(outside, "x.txt"), []byte("outside"), 0o600); err != nil {
				t.Fatal(err)
			}
			var armed, fired atomic.Bool
			_, a, b := startTwo(t, func(d *testDev, o *Options) {
				if d.name != "bravo" {
					return
				}
				o.hooks.beforeFinalCheck = func(p string) {
					if p != "sub/x.txt" || !armed.Load() || fired.Swap(true) {
						return
					}
					dir := filepath.Join(d.root, "sub")
					if err := os.WriteFile(filepath.Join(dir, "x.txt"), []byte("edit on bravo"), 0o644); err != nil {
						t.Error(err)
					}
					link := ""
					if withLink {
						link = outside
					}
					moveAside(t, dir, link)
				}
			})
			syncedFile(t, a, b, "sub/x.txt", []byte("v1"))
			armed.Store(true)
			a.write("sub/x.txt", []byte("v2 from alpha"))
			a.rescan()
			moved := filepath.Join(b.root, "sub-moved")
			var copies []string
			waitFor(t, "the new version and a conflict copy in sub-moved", converge, func() bool {
				copies, _ = filepath.Glob(filepath.Join(moved, "x.sync-conflict-*.txt"))
				data, _ := os.ReadFile(filepath.Join(moved, "x.txt"))
				return fired.Load() && len(copies) == 1 && string(data) == "v2 from alpha"
			})
			if data, err := os.ReadFile(copies[0]); err != nil || string(data) != "edit on bravo" {
				t.Errorf("conflict copy = %q, %v; want the edit", data, err)
			}
			if names := namesIn(t, outside); len(names) != 1 || names[0] != "x.txt" {
				t.Errorf("outside the folder: %v, want only x.txt", names)
			}
			if data, err := os.ReadFile(filepath.Join(outside, "x.txt")); err != nil || string(data) != "outside" {
				t.Errorf("outside/x.txt = %q, %v; want it untouched", data, err)
			}
		})
	}
}

// TestDirMovedAsideThroughSwappedParent: a directory on bravo becomes a
// file on alpha. Just before bravo's final check moves the directory to
// the trash (clearing syncd's temp files inside it first), its parent is
// renamed and a symlink to a directory outside put in its place, where a
// file of a temp file's name waits. That file must stay; the directory
// goes to the trash from where it now is.
func TestDirMovedAsideThroughSwappedParent(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "d", ".syncd-tmp-victim")
	if err := os.MkdirAll(filepath.Dir(victim), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("not syncd's"), 0o600); err != nil {
		t.Fatal(err)
	}
	var armed, fired atomic.Bool
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.beforeFinalCheck = func(p string) {
			if p != "sub/d" || !armed.Load() || fired.Swap(true) {
				return
			}
			dir := filepath.Join(d.root, "sub")
			moveAside(t, dir, outside)
		}
	})
	syncedFile(t, a, b, "sub/d/in.txt", []byte("inside"))
	armed.Store(true)
	if err := os.RemoveAll(filepath.Join(a.root, "sub/d")); err != nil {
		t.Fatal(err)
	}
	a.write("sub/d", []byte("now a file"))
	a.rescan()
	waitFor(t, "the file sub/d in sub-moved on bravo", converge, func() bool {
		data, _ := os.ReadFile(filepath.Join(b.root, "sub-moved", "d"))
		return fired.Load() && string(data) == "now a file"
	})
	if data, err := os.ReadFile(victim); err != nil || string(data) != "not syncd's" {
		t.Errorf("%s = %q, %v; want it untouched", victim, data, err)
	}
	if !trashHolds(t, b.root, "inside") {
		t.Errorf("bravo's trash does not hold the directory's file")
	}
}

// TestDropTempsThroughSwappedParent has a kept temp file whose directory
// was swapped for a symlink to a directory holding a file of the same
// name: dropTemps must leave that file alone, and still remove a kept temp
// file in a plain directory.
func TestDropTempsThroughSwappedParent(t *testing.T) {
	for _, m := range tempModes {
		t.Run(m.name, func(t *testing.T) {
			m.setup(t)
			root, outside := t.TempDir(), t.TempDir()
			f := newFolder(New(Options{}), FolderConfig{ID: "f", Root: root})
			const name = ".syncd-tmp-x.txt-0123456789abcdef"
			for _, dir := range []string{"plain", "sub-moved"} {
				if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, dir, name), []byte("temp"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(outside, filepath.Join(root, "sub")); err != nil {
				t.Fatal(err)
			}
			decoy := filepath.Join(outside, name)
			if err := os.WriteFile(decoy, []byte("decoy"), 0o600); err != nil {
				t.Fatal(err)
			}
			f.keepTemp(filepath.Join(root, "plain", name))
			f.keepTemp(filepath.Join(root, "sub", name))
			f.pass++
			f.dropTemps()
			if _, err := os.Lstat(filepath.Join(root, "plain", name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the kept temp file in plain/ is still there (%v)", err)
			}
			if data, err := os.ReadFile(decoy); err != nil || string(data) != "decoy" {
				t.Errorf("decoy = %q, %v; want it untouched", data, err)
			}
		})
	}
}

// TestCreateTempWithoutOpenat2 pulls new files where openat2 does not
// exist (ENOSYS, E2BIG) or is refused (EPERM from a seccomp filter): the
// parents are walked instead.
func TestCreateTempWithoutOpenat2(t *testing.T) {
	for _, refusal := range []error{syscall.ENOSYS, syscall.EPERM, syscall.E2BIG} {
		t.Run(refusal.Error(), func(t *testing.T) {
			newFilesArriveDespite(t, withoutOpenat2(t, refusal), "openat2")
		})
	}
}

// TestMetadataOnlyChange changes only the mode and mtime of a synced file:
// the other device applies them to its file in place (same inode), with
// nothing fetched.
func TestMetadataOnlyChange(t *testing.T) {
	for _, m := range tempModes {
		t.Run(m.name, func(t *testing.T) {
			m.setup(t)
			_, a, b := startTwo(t, nil)
			syncedFile(t, a, b, "m.txt", []byte("same content on both"))
			before, err := os.Stat(filepath.Join(b.root, "m.txt"))
			if err != nil {
				t.Fatal(err)
			}
			fetched := b.eng.fetched()
			p := filepath.Join(a.root, "m.txt")
			if err := os.Chmod(p, 0o600); err != nil {
				t.Fatal(err)
			}
			mtime := time.Date(2020, 2, 3, 4, 5, 6, 789, time.UTC)
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			a.rescan()
			waitConverged(t, converge, a, b)
			after, err := os.Stat(filepath.Join(b.root, "m.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if after.Mode().Perm() != 0o600 || !after.ModTime().Equal(mtime) {
				t.Errorf("bravo's m.txt: mode %v, mtime %v; want 0600, %v", after.Mode().Perm(), after.ModTime(), mtime)
			}
			if !os.SameFile(before, after) {
				t.Errorf("bravo's m.txt was replaced, not changed in place")
			}
			if got := b.eng.fetched() - fetched; got != 0 {
				t.Errorf("bravo fetched %d bytes for a change of mode and mtime", got)
			}
		})
	}
}

// TestMetadataChangeThroughSwappedSymlink replaces the file whose mode is
// about to change with a symlink to a file outside the folder, just before
// it is opened: the outside file's mode stays as it was.
func TestMetadataChangeThroughSwappedSymlink(t *testing.T) {
	for _, m := range tempModes {
		t.Run(m.name, func(t *testing.T) {
			m.setup(t)
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("outside"), 0o644); err != nil {
				t.Fatal(err)
			}
			var armed, swapped atomic.Bool
			_, a, b := startTwo(t, func(d *testDev, o *Options) {
				if d.name != "bravo" {
					return
				}
				o.hooks.beforeOpen = func(p string) {
					if p != "m.txt" || !armed.Load() || swapped.Swap(true) {
						return
					}
					target := filepath.Join(d.root, "m.txt")
					if err := os.Remove(target); err != nil {
						t.Error(err)
					}
					if err := os.Symlink(victim, target); err != nil {
						t.Error(err)
					}
				}
			})
			syncedFile(t, a, b, "m.txt", []byte("same content on both"))
			armed.Store(true)
			if err := os.Chmod(filepath.Join(a.root, "m.txt"), 0o600); err != nil {
				t.Fatal(err)
			}
			a.rescan()
			waitFor(t, "bravo to try the change of m.txt", converge, swapped.Load)
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				fi, err := os.Stat(victim)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o644 {
					t.Fatalf("the file outside the folder got mode %v through the symlink", fi.Mode().Perm())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestReadAtRefusesFIFO reads a block from a path where a FIFO took the
// place of an indexed file: readAt gives up at once instead of waiting for
// a writer forever (which stopped a pull that copied a block locally).
func TestReadAtRefusesFIFO(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "fifo")
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &folderReader{root: root, ok: true, rootFD: -1}
	defer r.close()
	done := make(chan bool, 1)
	go func() { done <- r.readAt("fifo", make([]byte, 16), 0, false) }()
	select {
	case ok := <-done:
		if ok {
			t.Errorf("readAt of a FIFO succeeded")
		}
	case <-time.After(5 * time.Second):
		// Unblock the open so that the goroutine ends.
		if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatalf("readAt of a FIFO is still waiting after 5 s")
	}
}

// TestLstatAtMatchesLstat: lstatAt's FileInfo is os.Lstat's, for every
// kind of file (mode bits, special bits, size, times, Sys, and what
// ownWrites reads of it).
func TestLstatAtMatchesLstat(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "f"), []byte("abc"), 0o640))
	must(syscall.Chmod(filepath.Join(dir, "f"), 0o6755))
	must(os.Mkdir(filepath.Join(dir, "d"), 0o755))
	must(syscall.Chmod(filepath.Join(dir, "d"), 0o1777))
	must(os.Symlink("f", filepath.Join(dir, "l")))
	must(unix.Mkfifo(filepath.Join(dir, "p"), 0o600))
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	must(err)
	defer l.Close()
	names := []string{"f", "d", "l", "p", "s"}
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(dir, "c"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
		names = append(names, "c")
	}
	fd, err := openRoot(dir)
	must(err)
	defer unix.Close(fd)
	for _, n := range names {
		full := filepath.Join(dir, n)
		want, err := os.Lstat(full)
		must(err)
		got, err := index.LstatAt(fd, n, full)
		must(err)
		if got.Name() != want.Name() || got.Mode() != want.Mode() || got.Size() != want.Size() ||
			!got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() || !reflect.DeepEqual(got.Sys(), want.Sys()) {
			t.Errorf("%s: lstatAt = %s %v %d %v, os.Lstat = %s %v %d %v", n,
				got.Name(), got.Mode(), got.Size(), got.ModTime(), want.Name(), want.Mode(), want.Size(), want.ModTime())
		}
		g, _ := ownStatOf(got)
		w, _ := ownStatOf(want)
		if g != w {
			t.Errorf("%s: ownStatOf = %+v, want %+v", n, g, w)
		}
	}
}

// TestTrashDirSwappedForSymlink: a directory of bravo's trash is a symlink
// to outside the folder. Putting an old version into the trash below it
// must make nothing outside and lose nothing: the update waits, with the
// old version in place.
func TestTrashDirSwappedForSymlink(t *testing.T) {
	outside := t.TempDir()
	_, b := updateAfter(t, func(b *testDev) {
		trash := filepath.Join(b.root, ".syncd", "trash")
		if err := os.MkdirAll(trash, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(trash, "docs")); err != nil {
			t.Fatal(err)
		}
	})
	waitFor(t, "bravo to give up on the update", converge, func() bool {
		return strings.Contains(b.logText(), "docs/sub/a.txt")
	})
	if names := namesIn(t, outside); len(names) != 0 {
		t.Errorf("the trash made %v outside the folder", names)
	}
	if data, err := os.ReadFile(filepath.Join(b.root, "docs/sub/a.txt")); err != nil || string(data) != "old" {
		t.Errorf("docs/sub/a.txt = %q, %v; want the old version kept", data, err)
	}
	// Retries fail the same way: one warning, not one per retry.
	time.Sleep(1500 * time.Millisecond)
	if n := strings.Count(b.logText(), "pull failed, will retry"); n != 1 {
		t.Errorf("%d warnings for the same failure, want 1:\n%s", n, b.logText())
	}
}

// updateAfter syncs docs/sub/a.txt ("old") from alpha to bravo, runs
// tamper on bravo, then has alpha update the file ("new version"), which
// puts bravo's old version into its trash.
func updateAfter(t *testing.T, tamper func(b *testDev)) (a, b *testDev) {
	_, a, b = pair2(t)
	syncedFile(t, a, b, "docs/sub/a.txt", []byte("old"))
	tamper(b)
	a.write("docs/sub/a.txt", []byte("new version"))
	a.rescan()
	return a, b
}

// TestTrashDirsArePrivate: the directories the trash makes, and .syncd
// (made when the folder first runs), are 0700: they hold old versions of
// files whose own directories may be private.
func TestTrashDirsArePrivate(t *testing.T) {
	a, b := updateAfter(t, func(b *testDev) {
		if err := os.RemoveAll(filepath.Join(b.root, ".syncd", "trash")); err != nil {
			t.Fatal(err)
		}
	})
	waitConverged(t, converge, a, b)
	if !trashHolds(t, b.root, "old") {
		t.Fatal("bravo's trash does not hold the old version")
	}
	for _, d := range []string{".syncd", ".syncd/trash", ".syncd/trash/docs", ".syncd/trash/docs/sub"} {
		fi, err := os.Stat(filepath.Join(b.root, d))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("%s has mode %v, want 0700", d, perm)
		}
	}
}

// TestPullErrorsRememberedBounded: the causes logPullError remembers (to
// log each once) are bounded, whatever a failure's messages look like; past
// the bound one line says that further causes are not logged, retries log
// nothing, and once the folder is in sync a failure is logged again.
func TestPullErrorsRememberedBounded(t *testing.T) {
	var buf bytes.Buffer
	f := newFolder(New(Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))}), FolderConfig{ID: "f", Root: t.TempDir()})
	for range 2 { // a retry of every failure logs nothing more
		for i := range maxErrLogged + 10 {
			f.logPullError("p", fmt.Errorf("cause %d", i))
		}
	}
	if n := len(f.errLogged); n > maxErrLogged+1 {
		t.Errorf("%d causes remembered, want at most %d", n, maxErrLogged+1)
	}
	failed, more := strings.Count(buf.String(), "pull failed, will retry"), strings.Count(buf.String(), "more pulls failed")
	if failed != maxErrLogged || more != 1 {
		t.Errorf("%d failures and %d 'more' lines logged, want %d and 1", failed, more, maxErrLogged)
	}
	f.setIdle()
	f.logPullError("p", fmt.Errorf("cause %d", 0))
	if n := strings.Count(buf.String(), "pull failed, will retry"); n != maxErrLogged+1 {
		t.Errorf("after the folder was in sync, a failure was not logged again (%d lines)", n)
	}
}
