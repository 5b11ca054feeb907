package peer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
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
				fd, fresh, err := f.createTemp("a/b/c/x.txt", "a/b/c/.syncd-tmp-x")
				if err != nil {
					t.Fatalf("open %d: %v", i, err)
				}
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
				fd, _, err := f.createTemp(c.p, c.tmp)
				if fd != nil {
					fd.Close()
				}
				if !errors.Is(err, ErrUnsafePath) {
					t.Errorf("createTemp(%s) = %v, want ErrUnsafePath", c.tmp, err)
				}
			}
			entries, err := os.ReadDir(outside)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				t.Errorf("%s was created outside the folder", e.Name())
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
				o.hooks.beforeOpenTemp = func(p string) {
					if p != "sub/x.txt" || swapped.Swap(true) {
						return
					}
					dir := filepath.Join(d.root, "sub")
					if err := os.Rename(dir, dir+"-moved"); err != nil {
						t.Error(err)
					}
					if err := os.Symlink(outside, dir); err != nil {
						t.Error(err)
					}
				}
			})
			a.write("sub/x.txt", []byte("must stay inside the folder"))
			a.rescan()
			written := func() []os.DirEntry {
				entries, err := os.ReadDir(outside)
				if err != nil {
					t.Fatal(err)
				}
				return entries
			}
			waitFor(t, "bravo to refuse the pull of sub/x.txt", converge, func() bool {
				return len(written()) > 0 || swapped.Load() && strings.Contains(b.logText(), "sub/x.txt")
			})
			for _, e := range written() {
				t.Errorf("%s was created outside the folder, through the symlink", e.Name())
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
			tried := withoutOpenat2(t, refusal)
			_, a, b := startTwo(t, nil)
			a.write("new.txt", []byte("arrives anyway"))
			a.write("dir/deeper/also.txt", []byte("this one too"))
			a.rescan()
			waitConverged(t, converge, a, b)
			if tried.Load() == 0 {
				t.Errorf("openat2 was not tried")
			}
		})
	}
}
