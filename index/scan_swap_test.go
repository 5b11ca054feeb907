package index

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestScanDirSwappedForSymlinkDuringWalk: the walk lstats d (a
// directory) and, before it lists d, the user moves d away and puts a
// symlink to a directory outside the folder in its place (mv d d.old; ln
// -s ~/private d). The listing (os.ReadDir follows the symlink) and each
// entry's lstat go through the symlink: the files outside the folder are
// recorded under d/ (and offered to peers), though the folder holds only
// a symlink there.
func TestScanDirSwappedForSymlinkDuringWalk(t *testing.T) {
	for _, full := range []bool{true, false} {
		name := "targeted"
		if full {
			name = "full"
		}
		t.Run(name, func(t *testing.T) {
			e := newScanEnv(t)
			outside := t.TempDir()
			if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("outside the folder"), 0o600); err != nil {
				t.Fatal(err)
			}
			e.write("d/x.txt", "in the folder")
			e.scan()
			d := filepath.Join(e.root, "d")
			swapped := false
			e.sc.hooks.readDir = func(name string) ([]fs.DirEntry, error) {
				if name == d && !swapped {
					swapped = true
					if err := os.Rename(d, d+".old"); err != nil {
						t.Error(err)
					}
					if err := os.Symlink(outside, d); err != nil {
						t.Error(err)
					}
				}
				return os.ReadDir(name)
			}
			if full {
				e.scan()
			} else {
				e.scan("d")
			}
			if !swapped {
				t.Fatal("the hook did not run")
			}
			if r, ok, _ := e.st.Local("f", "d/secret.txt"); ok && !r.Deleted {
				t.Errorf("d/secret.txt recorded (%d bytes, content %s), but d is a symlink out of the folder: the file is not in the folder", r.Size, r.Content)
			}
		})
	}
}
