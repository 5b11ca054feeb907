package peer

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTrashCleanKeepsStampedFolderDir: a directory of the folder whose name
// looks like a trash entry's (NAME~STAMP: a trashed directory the user
// moved back out of .syncd/trash to restore it, keeping its name) holds a
// file that a peer deletes. The deleted file goes into the trash under
// .syncd/trash/NAME~STAMP/file~NOW; the next trash clean (at start, or with
// every full rescan) takes NAME~STAMP for an old trashed directory and
// removes it whole, with the file deleted a moment ago.
func TestTrashCleanKeepsStampedFolderDir(t *testing.T) {
	_, a, b := pair2(t)
	dir := "Album~20250301-120000.000000000" // restored from the trash months ago
	syncedFile(t, a, b, dir+"/01.flac", []byte("the only copy of track one"))
	if err := os.Remove(filepath.Join(a.root, dir, "01.flac")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	waitFor(t, "bravo to apply the deletion", converge, func() bool {
		_, err := os.Lstat(filepath.Join(b.root, dir, "01.flac"))
		return os.IsNotExist(err)
	})
	if !trashHolds(t, b.root, "the only copy") {
		t.Fatal("bravo's trash does not hold the deleted file right after the deletion")
	}
	// A restart runs the trash clean (as every full rescan does).
	b.stop()
	b.start()
	// The clean runs right after the first scan; give it time.
	for i := 0; i < 100; i++ {
		if !trashHolds(t, b.root, "the only copy") {
			t.Fatal("the trash clean removed a file deleted moments ago (its trash directory's name looked stamped)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitConverged(t, converge, a, b)
}
