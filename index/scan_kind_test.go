package index

import (
	"os"
	"path/filepath"
	"testing"
)

// TestScanKindSwapBetweenScans: a file replaced by a directory (with
// a file in it) and a directory (with files) replaced by a large file,
// between two scans, full or targeted (the watcher's paths). The records
// follow: the new kind, the new content, the old children buried, and
// nothing left under a path that is a file now.
func TestScanKindSwapBetweenScans(t *testing.T) {
	for _, full := range []bool{true, false} {
		name := "targeted"
		if full {
			name = "full"
		}
		t.Run(name, func(t *testing.T) {
			e := newScanEnv(t)
			e.write("p", "a file")
			e.write("q/a", "child a")
			e.write("q/sub/b", "child b")
			e.write("z/keep", "so the folder has records")
			e.scan()
			if err := os.Remove(filepath.Join(e.root, "p")); err != nil {
				t.Fatal(err)
			}
			e.write("p/in", "now a directory")
			if err := os.RemoveAll(filepath.Join(e.root, "q")); err != nil {
				t.Fatal(err)
			}
			data := e.writeRandom("q", 31, 3<<20)
			if full {
				e.scan()
			} else {
				e.scan("p", "p/in", "q", "q/a", "q/sub/b")
			}
			if r := e.rec("p"); r.Kind != Dir || r.Deleted {
				t.Errorf("p = %+v, want a directory", r)
			}
			_, want := chunkBlocks([]byte("now a directory"))
			if r := e.rec("p/in"); r.Content != want || r.Deleted {
				t.Errorf("p/in = %+v, want its content", r)
			}
			_, want = chunkBlocks(data)
			if r := e.rec("q"); r.Kind != File || r.Content != want || r.Deleted {
				t.Errorf("q = kind %v content %s deleted %v, want the large file %s", r.Kind, r.Content, r.Deleted, want)
			}
			for _, c := range []string{"q/a", "q/sub", "q/sub/b"} {
				if r := e.rec(c); !r.Deleted {
					t.Errorf("%s = %+v, want a tombstone (q is a file)", c, r)
				}
			}
		})
	}
}
