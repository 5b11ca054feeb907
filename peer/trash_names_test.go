package peer

import (
	"os"
	"path/filepath"
	"strings"
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

// TestTrashLongStampedFolderDir: a folder directory whose name is 255
// bytes and ends like a trash stamp (a trashed directory, its name
// already shortened to the limit, that the user moved back out of the
// trash). A file in it that a peer deletes must go into the trash; with
// "~d" appended (trashDirs) the trash's copy of the directory needs a
// 257-byte name, which no file system takes (ENAMETOOLONG): the deletion
// fails on every pull pass and never lands.
func TestTrashLongStampedFolderDir(t *testing.T) {
	_, a, b := pair2(t)
	dir := strings.Repeat("a", 255-26) + "~20250301-120000.000000000"
	if len(dir) != 255 {
		t.Fatalf("name of %d bytes", len(dir))
	}
	syncedFile(t, a, b, dir+"/01.flac", []byte("track one"))
	if err := os.Remove(filepath.Join(a.root, dir, "01.flac")); err != nil {
		t.Fatal(err)
	}
	a.rescan()
	deadline := time.Now().Add(converge)
	for {
		if _, err := os.Lstat(filepath.Join(b.root, dir, "01.flac")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bravo never applied the deletion of %s/01.flac (its trash directory would need a name of %d bytes)", dir, len(dir)+2)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !trashHolds(t, b.root, "track one") {
		t.Error("bravo's trash does not hold the deleted file")
	}
}
