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

// TestFullScanAsksPresentOnce: a full scan of a folder whose directories
// hold only old tombstones asks whether the folder is there at its start
// and before its own tombstones, not once per directory.
func TestFullScanAsksPresentOnce(t *testing.T) {
	e := newScanEnv(t)
	for i := range 50 {
		e.write(fmt.Sprintf("d%02d/gone.txt", i), "x")
		e.write(fmt.Sprintf("d%02d/kept.txt", i), "y")
	}
	e.scan()
	for i := range 50 {
		if err := os.Remove(filepath.Join(e.root, fmt.Sprintf("d%02d/gone.txt", i))); err != nil {
			t.Fatal(err)
		}
	}
	e.scan() // the tombstones
	asked := 0
	e.sc.o.Present = func() error { asked++; return nil }
	e.scan()
	if asked > 2 {
		t.Errorf("a full scan with nothing new gone asked Present %d times, want at most 2", asked)
	}
}
