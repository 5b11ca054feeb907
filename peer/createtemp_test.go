package peer

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestParentSwappedForSymlinkBeforeTemp swaps the directory a pulled file
// goes into for a symlink to a directory outside the folder, after the
// puller made sure the directory exists and just before it creates the
// file's temp file there: nothing may be created through the link.
func TestParentSwappedForSymlinkBeforeTemp(t *testing.T) {
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
	waitFor(t, "bravo to refuse the pull of sub/x.txt", converge, func() bool {
		return swapped.Load() && strings.Contains(b.logText(), "sub/x.txt")
	})
	if log := b.logText(); !strings.Contains(log, "not a plain directory") {
		t.Errorf("bravo's log does not say why the pull was refused:\n%s", log)
	}
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s was created outside the folder, through the symlink", e.Name())
	}
}

// TestCreateTempWithoutOpenat2 pulls new files, in new directories too,
// where openat2 does not exist (ENOSYS, E2BIG) or is refused (EPERM from a
// seccomp filter): the parents are checked with lstat instead.
func TestCreateTempWithoutOpenat2(t *testing.T) {
	for _, refusal := range []error{syscall.ENOSYS, syscall.EPERM, syscall.E2BIG} {
		t.Run(refusal.Error(), func(t *testing.T) {
			var tried atomic.Int64
			old := openat2
			openat2 = func(int, string, *unix.OpenHow) (int, error) { tried.Add(1); return -1, refusal }
			t.Cleanup(func() { openat2 = old; noOpenat2.Store(false) })
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
