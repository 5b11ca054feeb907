package peer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
)

// The conflict cases of doc.go ("Sync rules"), each played out on two
// devices whose link is cut while both change the same thing.

// startTwo starts two devices sharing folder "f"; mod (may be nil) adjusts
// each device's options.
func startTwo(t *testing.T, mod func(d *testDev, o *Options)) (*testNet, *testDev, *testDev) {
	t.Helper()
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	for _, d := range []*testDev{a, b} {
		peer := b
		if d == b {
			peer = a
		}
		err := d.startWith(func(o *Options) {
			if mod != nil {
				mod(d, o)
			}
		}, peer)
		if err != nil {
			t.Fatal(err)
		}
	}
	return n, a, b
}

// offline cuts the link between a and b, runs change, rescans both and
// restores the link.
func offline(n *testNet, a, b *testDev, change func()) {
	n.setLink(a, b, false)
	time.Sleep(100 * time.Millisecond)
	change()
	a.rescan()
	b.rescan()
	time.Sleep(400 * time.Millisecond)
	n.setLink(a, b, true)
}

func readFile(t *testing.T, d *testDev, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.root, filepath.FromSlash(rel)))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func conflictCopies(tree map[string]string) []string {
	var out []string
	for p := range tree {
		if isConflictCopy(p) {
			out = append(out, p)
		}
	}
	return out
}

func TestConflictCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before map[string]string // synced first
		onA    func(a *testDev)
		onB    func(b *testDev)
		want   map[string]string // path -> content on both devices ("" = a directory)
		absent []string
	}{
		{
			// A edits x, B renames x to y: y has B's content and x comes
			// back with A's edit (delete vs modify).
			name:   "modify vs rename",
			before: map[string]string{"x.txt": "base"},
			onA:    func(a *testDev) { a.write("x.txt", []byte("edit on a")) },
			onB:    func(b *testDev) { rename(b, "x.txt", "y.txt") },
			want:   map[string]string{"x.txt": "edit on a", "y.txt": "base"},
		},
		{
			// A renames x to y, B renames x to z: both names exist with the
			// same content and x is gone.
			name:   "rename vs rename",
			before: map[string]string{"x.txt": "base"},
			onA:    func(a *testDev) { rename(a, "x.txt", "y.txt") },
			onB:    func(b *testDev) { rename(b, "x.txt", "z.txt") },
			want:   map[string]string{"y.txt": "base", "z.txt": "base"},
			absent: []string{"x.txt"},
		},
		{
			// A deletes directory d, B adds d/new.txt meanwhile: the new file
			// syncs and d comes back everywhere; what A deleted stays deleted.
			name:   "directory deleted while a file was added inside",
			before: map[string]string{"d/old.txt": "old", "d/sub/deep.txt": "deep"},
			onA: func(a *testDev) {
				if err := os.RemoveAll(filepath.Join(a.root, "d")); err != nil {
					a.net.t.Fatal(err)
				}
			},
			onB:    func(b *testDev) { b.write("d/new.txt", []byte("new on b")) },
			want:   map[string]string{"d": "", "d/new.txt": "new on b"},
			absent: []string{"d/old.txt", "d/sub/deep.txt"},
		},
		{
			// A file added deep inside a directory tree the other side
			// deleted: every parent comes back.
			name:   "directory deleted while a file was added deeper inside",
			before: map[string]string{"d/sub/old.txt": "old"},
			onA: func(a *testDev) {
				if err := os.RemoveAll(filepath.Join(a.root, "d")); err != nil {
					a.net.t.Fatal(err)
				}
			},
			onB:    func(b *testDev) { b.write("d/sub/deeper/new.txt", []byte("new on b")) },
			want:   map[string]string{"d": "", "d/sub": "", "d/sub/deeper/new.txt": "new on b"},
			absent: []string{"d/sub/old.txt"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, a, b := startTwo(t, nil)
			for p, c := range tc.before {
				a.write(p, []byte(c))
			}
			a.rescan()
			waitConverged(t, converge, a, b)
			offline(n, a, b, func() {
				tc.onA(a)
				tc.onB(b)
			})
			got := waitConverged(t, converge, a, b)
			for p, c := range tc.want {
				if _, ok := got[p]; !ok {
					t.Errorf("Tree(%s) lacks %s; tree: %v", tc.name, p, got)
					continue
				}
				if c == "" {
					if !strings.HasPrefix(got[p], "dir:") {
						t.Errorf("Tree(%s)[%s] = %s, want a directory", tc.name, p, got[p])
					}
					continue
				}
				if data := readFile(t, a, p); data != c {
					t.Errorf("Content(%s, %s) = %q, want %q", tc.name, p, data, c)
				}
			}
			for _, p := range tc.absent {
				if _, ok := got[p]; ok {
					t.Errorf("Tree(%s) has %s, want it deleted", tc.name, p)
				}
			}
			if c := conflictCopies(got); len(c) != 0 {
				t.Errorf("ConflictCopies(%s) = %v, want none", tc.name, c)
			}
		})
	}
}

func rename(d *testDev, from, to string) {
	if err := os.Rename(filepath.Join(d.root, from), filepath.Join(d.root, to)); err != nil {
		d.net.t.Fatal(err)
	}
}

// TestLocalEditDuringPullBecomesConflict edits the file on the receiving
// device after its new version is complete in the temp file and before the
// rename: the final check must keep the local edit as a conflict copy.
func TestLocalEditDuringPullBecomesConflict(t *testing.T) {
	var once sync.Once
	var edited atomic.Bool
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.beforeFinalCheck = func(p string) {
			if p != "doc.txt" {
				return
			}
			once.Do(func() {
				// The user saves an edit the scanner has not seen yet.
				target := filepath.Join(d.root, "doc.txt")
				if err := os.WriteFile(target, []byte("local edit on bravo"), 0o644); err != nil {
					t.Error(err)
				}
				future := time.Now().Add(time.Hour)
				os.Chtimes(target, future, future)
				edited.Store(true)
			})
		}
	})
	syncedFile(t, a, b, "doc.txt", []byte("base"))
	if !edited.Load() {
		t.Fatalf("the hook did not run for the first pull of doc.txt")
	}
	got := waitConverged(t, converge, a, b)
	copies := conflictCopies(got)
	if len(copies) != 1 {
		t.Fatalf("ConflictCopies = %v, want one; tree: %v", copies, got)
	}
	for _, d := range []*testDev{a, b} {
		if data := readFile(t, d, copies[0]); data != "local edit on bravo" {
			t.Errorf("Content(%s, %s) = %q, want the local edit", d.name, copies[0], data)
		}
		if data := readFile(t, d, "doc.txt"); data != "base" {
			t.Errorf("Content(%s, doc.txt) = %q, want the pulled version", d.name, data)
		}
	}
	if !strings.Contains(copies[0], b.id.Short()) {
		t.Errorf("conflict copy %s is not named after bravo (%s), whose edit it holds", copies[0], b.id.Short())
	}
}

// TestLocalEditDuringPullOfChange is the same with a file both devices
// already had: A changes it, B edits it while pulling A's change.
func TestLocalEditDuringPullOfChange(t *testing.T) {
	var armed atomic.Bool
	var fired sync.Once
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		o.hooks.beforeFinalCheck = func(p string) {
			if p != "doc.txt" || !armed.Load() {
				return
			}
			fired.Do(func() {
				target := filepath.Join(d.root, "doc.txt")
				if err := os.WriteFile(target, []byte("bravo's unscanned edit"), 0o644); err != nil {
					t.Error(err)
				}
			})
		}
	})
	syncedFile(t, a, b, "doc.txt", []byte("v1"))
	armed.Store(true)
	got := syncedFile(t, a, b, "doc.txt", []byte("v2 from alpha"))
	copies := conflictCopies(got)
	if len(copies) != 1 {
		t.Fatalf("ConflictCopies = %v, want one; tree: %v", copies, got)
	}
	if data := readFile(t, a, copies[0]); data != "bravo's unscanned edit" {
		t.Errorf("Content(alpha, %s) = %q, want bravo's edit", copies[0], data)
	}
	if data := readFile(t, b, "doc.txt"); data != "v2 from alpha" {
		t.Errorf("Content(bravo, doc.txt) = %q, want alpha's change", data)
	}
}

func TestSplitWave(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         []string
		now, later []string
	}{
		{"flat", []string{"a", "b", "c/d"}, []string{"a", "b", "c/d"}, nil},
		{"file replaces dir", []string{"x", "x/f", "y/g"}, []string{"x", "y/g"}, []string{"x/f"}},
		{"deep", []string{"x", "x/a/b/c"}, []string{"x"}, []string{"x/a/b/c"}},
		{"chain", []string{"x", "x/y", "x/y/z"}, []string{"x"}, []string{"x/y", "x/y/z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var jobs []job
			for _, p := range tc.in {
				jobs = append(jobs, job{path: p})
			}
			now, later := splitWave(jobs)
			paths := func(js []job) []string {
				var out []string
				for _, j := range js {
					out = append(out, j.path)
				}
				return out
			}
			if got := paths(now); !slices.Equal(got, tc.now) {
				t.Errorf("SplitWave(%v) now = %v, want %v", tc.in, got, tc.now)
			}
			if got := paths(later); !slices.Equal(got, tc.later) {
				t.Errorf("SplitWave(%v) later = %v, want %v", tc.in, got, tc.later)
			}
		})
	}
}

// TestFileReplacedByDirectory: a file that both devices have (and have
// recorded) becomes a directory on one of them. The other keeps the file in
// its trash and makes the directory: before the fix, the file stayed as the
// trash's hard link and under its name, so mkdir failed on every retry and
// filled the trash.
func TestFileReplacedByDirectory(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("a"), n.addDevice("b")
	a.write("g", []byte("a file first"))
	a.start(b)
	b.start(a)
	a.rescan()
	waitConverged(t, converge, a, b)
	if err := os.Remove(filepath.Join(a.root, "g")); err != nil {
		t.Fatal(err)
	}
	got := syncedFile(t, a, b, "g/inside.txt", []byte("now a directory"))
	if _, ok := got["g/inside.txt"]; !ok {
		t.Fatalf("converged without g/inside.txt: %v", got)
	}
	trash, err := os.ReadDir(filepath.Join(b.root, ".syncd", "trash"))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, e := range trash {
		if strings.HasPrefix(e.Name(), "g~") {
			kept = append(kept, e.Name())
		}
	}
	if len(kept) != 1 {
		t.Fatalf("b's trash holds %d copies of the old file g (%v), want 1", len(kept), kept)
	}
	if data, err := os.ReadFile(filepath.Join(b.root, ".syncd", "trash", kept[0])); err != nil || string(data) != "a file first" {
		t.Fatalf("trashed g = %q, %v; want the old content", data, err)
	}
}

// TestRenameNoReplaceRefused: where the kernel, the file system or a
// seccomp filter refuses RENAME_NOREPLACE, new files still arrive (by the
// final check and a plain rename).
func TestRenameNoReplaceRefused(t *testing.T) {
	for _, refusal := range []error{syscall.EPERM, syscall.ENOSYS, syscall.EINVAL, syscall.EOPNOTSUPP} {
		t.Run(refusal.Error(), func(t *testing.T) {
			var tried atomic.Int64
			old := renameNoReplace
			renameNoReplace = func(int, string, string) error { tried.Add(1); return refusal }
			t.Cleanup(func() { renameNoReplace = old })
			newFilesArriveDespite(t, &tried, "RENAME_NOREPLACE")
		})
	}
}

// TestRenameExchangeRefused: where RENAME_EXCHANGE is refused, an update
// of a file still arrives (by a plain rename) and the old version is in
// the trash.
func TestRenameExchangeRefused(t *testing.T) {
	for _, refusal := range []error{syscall.EPERM, syscall.ENOSYS, syscall.EINVAL, syscall.EOPNOTSUPP} {
		t.Run(refusal.Error(), func(t *testing.T) {
			var tried atomic.Int64
			old := renameExchange
			renameExchange = func(int, string, string) error { tried.Add(1); return refusal }
			t.Cleanup(func() { renameExchange = old })
			_, a, b := startTwo(t, nil)
			syncedFile(t, a, b, "u.txt", []byte("first version"))
			syncedFile(t, a, b, "u.txt", []byte("second version"))
			if tried.Load() == 0 {
				t.Error("RENAME_EXCHANGE was not tried for the update")
			}
			if !holds(b.root, "first version", false) {
				t.Error("the first version is not in bravo's trash")
			}
		})
	}
}

// newFilesArriveDespite syncs two new files, one in new directories,
// between two fresh devices while a call of the pull is refused (what;
// tried counts its tries): they arrive anyway, and the call was tried.
func newFilesArriveDespite(t *testing.T, tried *atomic.Int64, what string) {
	t.Helper()
	_, a, b := startTwo(t, nil)
	a.write("new.txt", []byte("arrives anyway"))
	syncedFile(t, a, b, "dir/deeper/also.txt", []byte("this one too"))
	if tried.Load() == 0 {
		t.Errorf("%s was not tried for new files", what)
	}
}

// editKeepingMtime writes data at off into rel on d in place and puts its
// mtime back (the size stays), without a scan: only the change time shows
// the edit.
func editKeepingMtime(t *testing.T, d *testDev, rel string, off int64, data string) {
	t.Helper()
	p := filepath.Join(d.root, rel)
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a change time of its own
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte(data), off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(p, fi.ModTime(), fi.ModTime())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpdateAfterEditKeepingMtime: bravo's copy was edited in place with
// size and mtime put back, not scanned yet, when alpha's edit arrives. The
// content is not the recorded one, so bravo's edit is kept as a conflict
// copy.
func TestUpdateAfterEditKeepingMtime(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "x.txt", []byte("hello"))
	editKeepingMtime(t, b, "x.txt", 0, "j")
	got := syncedFile(t, a, b, "x.txt", []byte("hello, changed"))
	copies := conflictCopies(got)
	if len(copies) != 1 {
		t.Fatalf("conflict copies %v, want one; tree: %v", copies, got)
	}
	if data := readFile(t, a, copies[0]); data != "jello" {
		t.Errorf("conflict copy = %q, want bravo's edit", data)
	}
}

// TestDeleteAfterEditKeepingMtime: the same, with a deletion from alpha:
// bravo's edit wins and comes back to alpha.
func TestDeleteAfterEditKeepingMtime(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "x.txt", []byte("hello"))
	editKeepingMtime(t, b, "x.txt", 0, "j")
	if err := os.Remove(filepath.Join(a.root, "x.txt")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "bravo's edit back on alpha", converge, func() bool {
		data, _ := os.ReadFile(filepath.Join(a.root, "x.txt"))
		return string(data) == "jello"
	})
}

// TestUpdateAfterChmodNotScanned: bravo's copy got a new mode, not scanned
// yet, when alpha's edit arrives: a local change, kept as a conflict copy
// with that mode.
func TestUpdateAfterChmodNotScanned(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "x.sh", []byte("echo hi"))
	time.Sleep(20 * time.Millisecond)
	if err := os.Chmod(filepath.Join(b.root, "x.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := syncedFile(t, a, b, "x.sh", []byte("echo hello"))
	copies := conflictCopies(got)
	if len(copies) != 1 || !strings.HasPrefix(got[copies[0]], "file:755:") {
		t.Errorf("conflict copies %v, want one of mode 755; tree: %v", copies, got)
	}
}

// ctimeOnly changes only the change time of rel on d (a chmod to the mode
// it has), without a scan.
func ctimeOnly(t *testing.T, d *testDev, rel string) {
	t.Helper()
	p := filepath.Join(d.root, rel)
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a change time of its own
	if err := os.Chmod(p, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

// TestUpdateAfterCtimeOnlyChange: bravo's copy of a file has only a new
// change time, not scanned yet, when alpha's edit arrives. The content is
// still the recorded one, so the edit replaces it as usual: the old
// content goes to the trash, and no conflict copy is made.
func TestUpdateAfterCtimeOnlyChange(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "x.txt", []byte("hello"))
	ctimeOnly(t, b, "x.txt")
	a.write("x.txt", []byte("hello, changed"))
	a.rescan()
	for p := range waitConverged(t, converge, a, b) {
		if isConflictCopy(p) {
			t.Errorf("conflict copy %s of content that did not change", p)
		}
	}
	if !trashHolds(t, b.root, "hello") {
		t.Errorf("bravo's trash does not hold the replaced content")
	}
}

// TestDeleteAfterCtimeOnlyChange: the same, with a deletion from alpha,
// which must arrive.
func TestDeleteAfterCtimeOnlyChange(t *testing.T) {
	_, a, b := pair2(t)
	a.write("x.txt", []byte("hello"))
	syncedFile(t, a, b, "y.txt", []byte("other"))
	ctimeOnly(t, b, "x.txt")
	if err := os.Remove(filepath.Join(a.root, "x.txt")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "the deletion of x.txt on bravo", converge, func() bool {
		_, err := os.Lstat(filepath.Join(b.root, "x.txt"))
		return errors.Is(err, fs.ErrNotExist)
	})
	if !trashHolds(t, b.root, "hello") {
		t.Errorf("bravo's trash does not hold the deleted content")
	}
}

// TestLongNameToTrash replaces and then deletes a file whose name leaves
// no room for the trash's time stamp (240 bytes): the trash entry's name
// is shortened, and both arrive.
func TestLongNameToTrash(t *testing.T) {
	_, a, b := pair2(t)
	name := strings.Repeat("n", 236) + ".txt"
	syncedFile(t, a, b, name, []byte("first"))
	syncedFile(t, a, b, name, []byte("second"))
	if err := os.Remove(filepath.Join(a.root, name)); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	got := waitConverged(t, converge, a, b)
	if _, ok := got[name]; ok {
		t.Errorf("%s still there after its deletion", name)
	}
	for _, content := range []string{"first", "second"} {
		if !trashHolds(t, b.root, content) {
			t.Errorf("bravo's trash does not hold %q", content)
		}
	}
}

// TestTrashNeverReplacesAnEntry trashes two versions of the same file with
// a clock that stands still, so that both get the same time stamp: the
// second is kept beside the first, not over it.
func TestTrashNeverReplacesAnEntry(t *testing.T) {
	still := time.Now()
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name == "bravo" {
			o.Now = func() time.Time { return still }
		}
	})
	syncedFile(t, a, b, "x.txt", []byte("first"))
	syncedFile(t, a, b, "x.txt", []byte("second"))
	if err := os.Remove(filepath.Join(a.root, "x.txt")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	for _, content := range []string{"first", "second"} {
		if !trashHolds(t, b.root, content) {
			t.Errorf("bravo's trash does not hold %q", content)
		}
	}
}

// TestLongSymlinkName syncs a symlink whose name (245 bytes) leaves no
// room for the temp name's prefix and suffix.
func TestLongSymlinkName(t *testing.T) {
	_, a, b := pair2(t)
	name := strings.Repeat("s", 245)
	if err := os.Symlink("target.txt", filepath.Join(a.root, name)); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)
	if target, err := os.Readlink(filepath.Join(b.root, name)); err != nil || target != "target.txt" {
		t.Errorf("symlink on bravo -> %q, %v; want target.txt", target, err)
	}
}

// TestConflictCopyNeverReplacesAFile makes a conflict copy whose name is
// taken already (the same copy made elsewhere and synced): the file there
// stays, and the losing version goes to the trash instead.
func TestConflictCopyNeverReplacesAFile(t *testing.T) {
	root := t.TempDir()
	f := newFolder(New(Options{}), FolderConfig{ID: "f", Root: root})
	if err := os.Mkdir(markerDir(root), 0o700); err != nil { // as a running folder has it
		t.Fatal(err)
	}
	var err error
	if f.rootFD, err = openRoot(root); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(f.rootFD)
	loser := index.Record{ModTime: time.Now().UnixNano(), Version: index.Vector{{Device: 7, Value: 1}}}
	name := conflictName("x.txt", loser)
	for p, data := range map[string]string{"x.txt": "mine", name: "already there"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.makeConflictCopy("x.txt", at{f.rootFD, "x.txt", filepath.Join(root, "x.txt")}, loser); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(root, name)); err != nil || string(data) != "already there" {
		t.Errorf("%s = %q, %v; want it untouched", name, data, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "x.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("x.txt still in place (%v)", err)
	}
	if !trashHolds(t, root, "mine") {
		t.Errorf("the trash does not hold the losing version")
	}
}

// TestSupersededVersionStaysGone plays a deletion that loses to a
// concurrent edit while a third device still holds the deleted version:
// alpha edits p (Y), charlie takes Y and goes away, alpha deletes p,
// bravo's offline edit Z (older mtime) beats the deletion. When charlie
// comes back, Y, which alpha deleted, must not come back: the version alpha
// records for Z has seen Y (it merges both vectors), so Z replaces Y on
// charlie and nothing is a conflict.
func TestSupersededVersionStaysGone(t *testing.T) {
	n, ds := meshNet(t, "alpha", "bravo", "charlie")
	a, b, c := ds[0], ds[1], ds[2]
	syncedFile(t, a, b, "p.txt", []byte("base"))
	waitConverged(t, converge, a, b, c)

	n.setLink(a, b, false)
	n.setLink(b, c, false)
	time.Sleep(100 * time.Millisecond)
	b.write("p.txt", []byte("Z from bravo"))
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(b.root, "p.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	b.rescan()
	waitFor(t, "bravo scans Z", converge, func() bool {
		r, _, _ := b.store.Local("f", "p.txt")
		return r.ModTime == old.UnixNano()
	})
	before, err := os.Stat(filepath.Join(b.root, "p.txt"))
	if err != nil {
		t.Fatal(err)
	}
	a.write("p.txt", []byte("Y from alpha"))
	a.rescan()
	waitFor(t, "charlie takes Y", converge, func() bool { return readFile(t, c, "p.txt") == "Y from alpha" })

	n.setLink(a, c, false)
	time.Sleep(100 * time.Millisecond)
	if err := os.Remove(filepath.Join(a.root, "p.txt")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	time.Sleep(300 * time.Millisecond)
	n.setLink(a, b, true)
	waitConverged(t, converge, a, b)
	if got := readFile(t, a, "p.txt"); got != "Z from bravo" {
		t.Fatalf("p.txt on alpha = %q, want bravo's edit (it beats the deletion)", got)
	}
	// Bravo takes alpha's version of Z (the same content): were charlie
	// to meet bravo before, Y and bravo's Z would be concurrent for them.
	waitFor(t, "bravo records alpha's version of Z", converge, func() bool {
		ra, _, _ := a.store.Local("f", "p.txt")
		rb, _, _ := b.store.Local("f", "p.txt")
		return ra.Version.Compare(rb.Version) == index.Equal
	})
	// Only the version changed for bravo: its file is not touched.
	after, err := os.Stat(filepath.Join(b.root, "p.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if index.Ctime(after) != index.Ctime(before) {
		t.Errorf("bravo's p.txt was changed (ctime %d, was %d) for a new version of the same content", index.Ctime(after), index.Ctime(before))
	}

	n.setLink(a, c, true)
	n.setLink(b, c, true)
	got := waitConverged(t, converge, a, b, c)
	for _, d := range []*testDev{a, b, c} {
		if data := readFile(t, d, "p.txt"); data != "Z from bravo" {
			t.Errorf("p.txt on %s = %q, want %q (Y was deleted after it was made)", d.name, data, "Z from bravo")
		}
	}
	if cc := conflictCopies(got); len(cc) != 0 {
		t.Errorf("conflict copies %v, want none (Z has seen Y)", cc)
	}
}

// TestSameNewFileOnBoth writes the same new file on both devices; the
// receiver has not scanned its copy when the sender's version arrives.
// Identical content is no conflict: no conflict copy appears.
func TestSameNewFileOnBoth(t *testing.T) {
	_, a, b := pair2(t)
	syncedFile(t, a, b, "first.txt", []byte("both running")) // past bravo's first scan
	data := randBytes(7, 300<<10)
	b.write("photo.jpg", data)
	a.write("photo.jpg", data)
	a.rescan()
	waitConverged(t, converge, a, b)
	b.rescan()
	time.Sleep(300 * time.Millisecond)
	got := waitConverged(t, converge, a, b)
	if cc := conflictCopies(got); len(cc) != 0 {
		t.Errorf("conflict copies %v, want none (both sides wrote the same content)", cc)
	}
	if readFile(t, b, "photo.jpg") != string(data) {
		t.Errorf("photo.jpg on bravo lost its content")
	}
}

// TestConflictCopiesInOneSecond: bravo loses twice on doc.txt, with two
// versions whose mtimes fall in the same second (its edits are put back
// to that second). Both losers would get the same conflict copy name; the
// second takes the name tagged with its content, and both stay in sight
// on both devices (before, the second went to the trash). The second edit
// may also be found by the final check before bravo scanned it (the
// watcher's debounce, a scan still running): it is hashed for its name
// (found in review).
func TestConflictCopiesInOneSecond(t *testing.T) {
	for _, tc := range []struct {
		name       string
		scanSecond bool
	}{{"second edit scanned", true}, {"second edit not scanned yet", false}} {
		t.Run(tc.name, func(t *testing.T) {
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
			lose("second loser, other bytes", "alpha 2", sec.Add(600*time.Millisecond), 2*time.Minute, tc.scanSecond)
			got := waitConverged(t, converge, a, b)
			held := map[string]bool{}
			var copies []string
			for p := range got {
				if isConflictCopy(p) {
					copies = append(copies, p)
					held[readFile(t, a, p)] = true
				}
			}
			if len(copies) != 2 || !held["first loser"] || !held["second loser, other bytes"] {
				t.Errorf("conflict copies %v hold %v, want the two losers (the second in bravo's trash: %v)",
					copies, held, trashHolds(t, b.root, "second loser"))
			}
			if got := readFile(t, a, "doc.txt"); got != "alpha 2" {
				t.Errorf("doc.txt = %q, want alpha's last edit", got)
			}
		})
	}
}
