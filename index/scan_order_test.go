package index

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenameTombstonesFirst: after a directory is renamed (and a file in
// the root renamed too), a scan writes the tombstones of the old paths
// before the records of the new ones, full or targeted (the watcher's), so
// that a peer learns of the deletion no later than of the new file and can
// move its copy instead of copying it.
func TestRenameTombstonesFirst(t *testing.T) {
	for _, tc := range []struct {
		name    string
		targets []string
	}{
		{"full", nil},
		{"targeted", []string{"album", "photos", "zz-old.txt", "aa-new.txt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newScanEnv(t)
			for i := range 600 { // more than a batch of records
				e.write(fmt.Sprintf("album/d%d/p%03d.jpg", i%3, i), fmt.Sprint("photo ", i))
			}
			e.write("zz-old.txt", "a file renamed in the root")
			e.scan()
			since := e.seq()
			if err := os.Rename(filepath.Join(e.root, "album"), filepath.Join(e.root, "photos")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(e.root, "zz-old.txt"), filepath.Join(e.root, "aa-new.txt")); err != nil {
				t.Fatal(err)
			}
			e.scan(tc.targets...)
			var lastGone, firstNew uint64
			gone, made := 0, 0
			err := e.st.LocalSince("f", since, func(r Record) error {
				switch {
				case r.Deleted:
					gone++
					lastGone = max(lastGone, r.Sequence)
				case r.Kind == File:
					made++
					if firstNew == 0 || r.Sequence < firstNew {
						firstNew = r.Sequence
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if gone != 605 || made != 601 {
				t.Fatalf("%d tombstones and %d new files, want 605 and 601", gone, made)
			}
			if lastGone > firstNew {
				t.Errorf("a tombstone (seq %d) came after a new file's record (seq %d)", lastGone, firstNew)
			}
			if r := e.rec("photos/d0/p000.jpg"); !strings.HasPrefix(r.Path, "photos/") || r.Deleted {
				t.Errorf("photos/d0/p000.jpg = %+v", r)
			}
		})
	}
}
