package peer

import (
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/syncd-project/syncd/index"
)

// TestAdoptTempLeavesSymlinkTemp: a symlink's temp (".link") left by a
// kill -9 of the pull of the symlink "notes-current.pdf" has the length and
// prefix of the file temps of "notes" (TempPrefix+"notes-"+"current.pdf"+
// ".link" against TempPrefix+"notes-"+16 hex). adoptTemp took it for the
// pull of "notes": the symlink got notes' temp name, createTemp's
// O_NOFOLLOW reopen failed ("unsafe path"), and "notes" did not sync until
// a full rescan (an hour by default).
func TestAdoptTempLeavesSymlinkTemp(t *testing.T) {
	var crash atomic.Bool
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name == "bravo" {
			o.hooks.beforePull = func() {
				if crash.Load() {
					runtime.Goexit() // kill -9 of the folder goroutine, before it pulls
				}
			}
		}
	})
	a.write("notes", []byte("version one"))
	if err := os.Symlink("notes", filepath.Join(a.root, "notes-current.pdf")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitConverged(t, converge, a, b)

	crash.Store(true)
	a.write("notes", []byte("version two, edited on alpha"))
	a.rescan()
	waitFor(t, "bravo to have alpha's new record", converge, func() bool {
		r, ok, _ := b.store.Remote("f", a.id, "notes")
		return ok && r.Size == int64(len("version two, edited on alpha"))
	})
	b.stop()
	// What a kill -9 between applySymlink's symlinkat and its rename
	// leaves (any earlier update of the symlink).
	link := filepath.Join(b.root, index.TempPrefix+"notes-current.pdf.link")
	if err := os.Symlink("elsewhere", link); err != nil {
		t.Fatal(err)
	}
	crash.Store(false)
	b.start(a)
	waitConverged(t, converge, a, b)
}
