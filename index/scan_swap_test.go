package index

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestScanDirSwappedForSymlinkDuringWalk: the walk finds d a directory;
// then the user moves d away and puts a symlink to a directory outside
// the folder in its place (mv d d.old; ln -s ~/private d), either before
// the walk opens d or after. Nothing outside the folder may be recorded
// under d/: listed by path, the symlink would be followed. Swapped before
// the open, d is left for the next scan, its records kept; swapped
// after, the walk lists the directory it opened (now d.old). The next
// scan records d as the symlink it is.
func TestScanDirSwappedForSymlinkDuringWalk(t *testing.T) {
	for _, full := range []bool{true, false} {
		for _, checked := range []bool{false, true} {
			name := "targeted"
			if full {
				name = "full"
			}
			if checked {
				name += "/after-open"
			} else {
				name += "/before-open"
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
				e.sc.hooks.dirOpened = func(name string, c bool) {
					if name == d && c == checked && !swapped {
						swapped = true
						if err := os.Rename(d, d+".old"); err != nil {
							t.Error(err)
						}
						if err := os.Symlink(outside, d); err != nil {
							t.Error(err)
						}
					}
				}
				var res ScanResult
				if full {
					res = e.scan()
				} else {
					res = e.scan("d")
				}
				if !swapped {
					t.Fatal("the hook did not run")
				}
				if r, ok, _ := e.st.Local("f", "d/secret.txt"); ok && !r.Deleted {
					t.Errorf("d/secret.txt recorded (%d bytes, content %s), but d is a symlink out of the folder: the file is not in the folder", r.Size, r.Content)
				}
				if !checked {
					if res.Busy == 0 {
						t.Errorf("scan = %+v, want d left for the next scan (busy)", res)
					}
					if r := e.rec("d/x.txt"); r.Deleted {
						t.Error("d/x.txt was buried by the scan that left d for later")
					}
				}
				e.sc.hooks.dirOpened = nil
				e.scan("d", "d.old") // as the watcher reports them
				if r := e.rec("d"); r.Kind != Symlink || r.Target != outside {
					t.Errorf("d recorded as %+v, want the symlink to %s", r, outside)
				}
				if r := e.rec("d/x.txt"); !r.Deleted {
					t.Error("d/x.txt still recorded live under the symlink d")
				}
				if r := e.rec("d.old/x.txt"); r.Deleted || r.Size != int64(len("in the folder")) {
					t.Errorf("d.old/x.txt recorded as %+v", r)
				}
				if r, ok, _ := e.st.Local("f", "d/secret.txt"); ok && !r.Deleted {
					t.Error("d/secret.txt recorded after the symlink was scanned")
				}
			})
		}
	}
}

// TestScanParentSwappedForSymlink: the walk is in d and walks its first
// subdirectory d/a; meanwhile the user moves d away and puts a symlink to
// a directory outside the folder in its place. d/sub, walked next, must
// not be opened through the symlink: ~/private/sub's files would be
// recorded as d/sub's. (Opened by path with O_NOFOLLOW, only the last
// component is guarded.)
func TestScanParentSwappedForSymlink(t *testing.T) {
	for _, full := range []bool{true, false} {
		name := "targeted"
		if full {
			name = "full"
		}
		t.Run(name, func(t *testing.T) {
			e := newScanEnv(t)
			outside := t.TempDir()
			if err := os.MkdirAll(filepath.Join(outside, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outside, "sub", "secret.txt"), []byte("outside the folder"), 0o600); err != nil {
				t.Fatal(err)
			}
			e.write("d/a/y.txt", "in the folder")
			e.write("d/sub/x.txt", "in the folder")
			e.scan()
			d := filepath.Join(e.root, "d")
			swapped := false
			e.sc.hooks.dirOpened = func(name string, checked bool) {
				if name == filepath.Join(d, "a") && checked && !swapped {
					swapped = true
					if err := os.Rename(d, d+".old"); err != nil {
						t.Error(err)
					}
					if err := os.Symlink(outside, d); err != nil {
						t.Error(err)
					}
				}
			}
			if full {
				e.scan()
			} else {
				e.scan("d")
			}
			e.sc.hooks.dirOpened = nil
			if !swapped {
				t.Fatal("the hook did not run")
			}
			if r, ok, _ := e.st.Local("f", "d/sub/secret.txt"); ok && !r.Deleted {
				t.Errorf("d/sub/secret.txt recorded (%d bytes), but d is a symlink out of the folder", r.Size)
			}
		})
	}
}

// TestScanEntryGoneBeforeLstat: the walk lists d, and one of its entries
// (a.tmp, an editor's or a build's temporary file) is removed before the
// walk lstats it. The entries after it must be recorded as usual: new and
// changed files, and the subtrees of later subdirectories. (A version of
// walkDir kept that ENOENT for every later entry, which it took for gone.)
func TestScanEntryGoneBeforeLstat(t *testing.T) {
	for _, full := range []bool{true, false} {
		name := "targeted"
		if full {
			name = "full"
		}
		t.Run(name, func(t *testing.T) {
			e := newScanEnv(t)
			e.write("d/b.txt", "old")
			e.scan()
			e.write("d/a.tmp", "temporary")
			e.write("d/b.txt", "new content")
			e.write("d/c.txt", "a new file")
			e.write("d/sub/x.txt", "a new file below")
			d := filepath.Join(e.root, "d")
			removed := false
			e.sc.hooks.readDir = func(name string) ([]fs.DirEntry, error) {
				ents, err := os.ReadDir(name)
				if name == d && !removed {
					removed = true
					// Gone between the listing and the lstat of its entries.
					if err := os.Remove(filepath.Join(d, "a.tmp")); err != nil {
						t.Error(err)
					}
				}
				return ents, err
			}
			var res ScanResult
			if full {
				res = e.scan()
			} else {
				res = e.scan("d")
			}
			e.sc.hooks.readDir = nil
			if !removed {
				t.Fatal("the hook did not run")
			}
			_, want := chunkBlocks([]byte("new content"))
			if got := e.rec("d/b.txt").Content; got != want {
				t.Errorf("d/b.txt (edited) recorded as %s, want %s (scan %+v)", got, want, res)
			}
			for _, p := range []string{"d/c.txt", "d/sub/x.txt"} {
				if r, ok, _ := e.st.Local("f", p); !ok || r.Deleted {
					t.Errorf("%s (new) not recorded by the scan (scan %+v)", p, res)
				}
			}
		})
	}
}
