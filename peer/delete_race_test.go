package peer

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// inCall reports whether a function whose name ends with name is on the
// calling goroutine's stack.
func inCall(name string) bool {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		fr, more := frames.Next()
		if strings.HasSuffix(fr.Function, name) {
			return true
		}
		if !more {
			return false
		}
	}
}

// TestSaveDuringPulledDeletion: alpha deletes doc.txt; on bravo the user
// saves doc.txt (an editor's write-temp-and-rename) just after
// applyDelete found the old file as recorded and before it is moved into
// the trash. The save was moved into the trash and the deletion recorded:
// bravo's new content left the folder silently. A modification beats a
// deletion: the save is put back, and syncs. The save is made from inside
// the trash's clock read (Options.Now), which runs in that window.
func TestSaveDuringPulledDeletion(t *testing.T) {
	var save1 oneShot
	const save = "bravo's save made while alpha's deletion was applied"
	_, a, b := startTwo(t, func(d *testDev, o *Options) {
		if d.name != "bravo" {
			return
		}
		target := filepath.Join(d.root, "doc.txt")
		o.Now = func() time.Time {
			if save1.armed.Load() && inCall("peer.(*folder).trashDeleted") {
				save1.offer(func() { saveByRename(t, target, save) })
			}
			return time.Now()
		}
	})
	syncedFile(t, a, b, "doc.txt", []byte("v1"))
	save1.arm()
	if err := os.Remove(filepath.Join(a.root, "doc.txt")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "the save during bravo's deletion", converge, save1.fired.Load)
	b.rescan()
	a.rescan()
	waitConverged(t, converge, a, b)
	if !holds(b.root, save, true) {
		where := "nowhere"
		if holds(b.root, save, false) {
			where = "only in bravo's .syncd/trash"
		}
		t.Errorf("bravo's save made while the deletion was applied is not in the folder; it is %s (and the deletion won)", where)
	}
}
