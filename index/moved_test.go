package index

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeRandom writes n pseudo-random bytes (from seed) at rel and returns
// them.
func (e *scanEnv) writeRandom(rel string, seed uint64, n int) []byte {
	e.t.Helper()
	data := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(data)
	e.write(rel, string(data))
	return data
}

// link makes to (its directory too) a hard link of from, in the folder.
func (e *scanEnv) link(from, to string) {
	e.t.Helper()
	dst := filepath.Join(e.root, to)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Link(filepath.Join(e.root, from), dst); err != nil {
		e.t.Fatal(err)
	}
}

// move renames from to to inside the folder, making to's directory.
func (e *scanEnv) move(from, to string) {
	e.t.Helper()
	dst := filepath.Join(e.root, to)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(e.root, from), dst); err != nil {
		e.t.Fatal(err)
	}
	// A clock tick before the scan, as the watcher's debounce leaves: a
	// change time in the tick of the scan's bury counts as after it.
	time.Sleep(20 * time.Millisecond)
}

// TestScanRenameTakesBlocks: a large file renamed or moved is not hashed
// again: its new path takes the blocks of the record its old path had,
// once the first and last of them are read back and match, whether the
// scan is the watcher's (both paths), the watcher's in two halves, or a
// full one.
func TestScanRenameTakesBlocks(t *testing.T) {
	const size = 12 << 20
	for _, tc := range []struct {
		name     string
		from, to string
		scan     func(e *scanEnv, from, to string) ScanResult
	}{
		{"watcher, across directories", "a/v.mkv", "b/c/v.mkv", func(e *scanEnv, from, to string) ScanResult {
			return e.scan(from, "b")
		}},
		{"watcher, in two scans", "a/v.mkv", "a/w.mkv", func(e *scanEnv, from, to string) ScanResult {
			first := e.scan(from)
			if first.Deleted != 1 {
				t.Errorf("first half: %+v, want one deletion", first)
			}
			return e.scan(to)
		}},
		{"full scan, same directory", "v.mkv", "w.mkv", func(e *scanEnv, from, to string) ScanResult {
			return e.scan()
		}},
		{"full scan, to a directory walked first", "z/v.mkv", "a/v.mkv", func(e *scanEnv, from, to string) ScanResult {
			// The walk reaches z/ well after a worker could have
			// hashed a/v.mkv.
			e.sc.hooks.readDir = func(name string) ([]fs.DirEntry, error) {
				if filepath.Base(name) == "z" {
					time.Sleep(300 * time.Millisecond)
				}
				return os.ReadDir(name)
			}
			return e.scan()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newScanEnv(t)
			data := e.writeRandom(tc.from, 1, size)
			e.scan()
			before := e.rec(tc.from)
			if len(before.Blocks) < movedMinBlocks {
				t.Fatalf("%d blocks, want at least %d for the test", len(before.Blocks), movedMinBlocks)
			}
			e.move(tc.from, tc.to)
			res := tc.scan(e, tc.from, tc.to)
			if res.Moved != 1 || res.Bytes <= 0 || res.Bytes >= size/2 {
				t.Errorf("scan after the rename: Moved %d, %d bytes read, want 1 and some of the first and last blocks only", res.Moved, res.Bytes)
			}
			after := e.rec(tc.to)
			blocks, content := chunkBlocks(data)
			if after.Content != content || !cmp.Equal(after.Blocks, blocks) || after.Size != size {
				t.Errorf("record at the new path: content %s, %d blocks, want %s, %d blocks", after.Content, len(after.Blocks), content, len(blocks))
			}
			if gone, ok, _ := e.st.Local("f", tc.from); !ok || !gone.Deleted {
				t.Errorf("old path's record = %+v, want a tombstone", gone)
			}
		})
	}
}

// TestScanRenameAfterEditHashes: a file edited in place at its start or
// end, its size and mtime put back (a tagger), then renamed, is hashed
// again: the new path gets the new content, not the blocks remembered
// from the old one.
func TestScanRenameAfterEditHashes(t *testing.T) {
	const size = 12 << 20
	for _, tc := range []struct {
		name string
		off  int64
	}{{"head", 100}, {"tail", size - 100}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newScanEnv(t)
			data := e.writeRandom("song.flac", 2, size)
			e.scan()
			tagInPlace(t, filepath.Join(e.root, "song.flac"), tc.off, "TAG")
			copy(data[tc.off:], "TAG")
			e.move("song.flac", "album/01 song.flac")
			res := e.scan("song.flac", "album")
			if res.Moved != 0 || res.Bytes < size {
				t.Errorf("scan after the rename: Moved %d, %d bytes read, want 0 and the whole file", res.Moved, res.Bytes)
			}
			if _, want := chunkBlocks(data); e.rec("album/01 song.flac").Content != want {
				t.Errorf("content at the new path = %s, want %s (the edited bytes)", e.rec("album/01 song.flac").Content, want)
			}
		})
	}
}

// TestScanMovedForgotten: what a scan buried more than movedFor ago is
// forgotten: a rename whose second half is scanned that much later is
// hashed.
func TestScanMovedForgotten(t *testing.T) {
	now := time.Now()
	e := newScanEnv(t)
	e.sc = NewScanner(e.st, "f", e.root, ScanOptions{Self: self, Workers: 2, Now: func() time.Time { return now }})
	e.writeRandom("v.mkv", 3, 12<<20)
	e.scan()
	e.move("v.mkv", "w.mkv")
	e.scan("v.mkv")
	now = now.Add(movedFor + time.Second)
	if res := e.scan("w.mkv"); res.Moved != 0 {
		t.Errorf("Moved = %d after %v, want 0 (forgotten)", res.Moved, movedFor+time.Second)
	}
	e.sc.movedMu.Lock()
	defer e.sc.movedMu.Unlock()
	if e.sc.moved != nil || e.sc.movedBlocks != 0 {
		t.Errorf("remembered after the scan: %d files, %d blocks, want none", len(e.sc.moved), e.sc.movedBlocks)
	}
}

// TestScanFullDefersNewLargeFiles: a full scan hashes the large files new
// to their paths after its tombstones; a new one that is no rename is
// recorded all the same, and so is one that replaced a recorded file.
func TestScanFullDefersNewLargeFiles(t *testing.T) {
	e := newScanEnv(t)
	e.writeRandom("keep.bin", 4, 3<<20)
	old := e.writeRandom("b/replaced.bin", 5, 3<<20)
	e.scan()
	fresh := e.writeRandom("a/new.bin", 6, 5<<20)
	e.write("b/replaced.bin.tmp", string(old[:1<<20]))
	e.move("b/replaced.bin.tmp", "b/replaced.bin")
	res := e.scan()
	if res.Changed != 3 || res.Moved != 0 { // the two files and a/
		t.Errorf("scan: %+v, want 3 changed (a/ and two files), none moved", res)
	}
	if _, want := chunkBlocks(fresh); e.rec("a/new.bin").Content != want {
		t.Errorf("a/new.bin recorded as %s, want %s", e.rec("a/new.bin").Content, want)
	}
	if _, want := chunkBlocks(old[:1<<20]); e.rec("b/replaced.bin").Content != want {
		t.Errorf("b/replaced.bin recorded as %s, want %s", e.rec("b/replaced.bin").Content, want)
	}
}

// TestScanMovedThenEditedInPlace (found in review): a large file renamed
// and scanned (its new path takes the remembered blocks), then edited in
// the middle in place with its size and mtime put back, and not renamed
// again. The change time sends it to be hashed (as in
// TestScanEditKeepingSizeAndMtime), and the blocks remembered for its
// inode must not be taken: its path's record has that inode already.
func TestScanMovedThenEditedInPlace(t *testing.T) {
	needCtime(t)
	const size = 12 << 20
	e := newScanEnv(t)
	data := e.writeRandom("v.mkv", 7, size)
	e.scan()
	e.move("v.mkv", "w.mkv")
	if res := e.scan(); res.Moved != 1 {
		t.Fatalf("scan after the rename: Moved %d, want 1", res.Moved)
	}
	off := int64(size / 2)
	tagInPlace(t, filepath.Join(e.root, "w.mkv"), off, "EDITED IN THE MIDDLE")
	copy(data[off:], "EDITED IN THE MIDDLE")
	res := e.scan()
	_, want := chunkBlocks(data)
	if got := e.rec("w.mkv").Content; got != want {
		t.Errorf("after an in-place edit at w.mkv (no rename since): content %s, want %s (scan: %+v)", got, want, res)
	}
	// And it stays so: the record took the new ctime.
	res = e.scan()
	if got := e.rec("w.mkv").Content; got != want {
		t.Errorf("a scan later: content %s, want %s (scan: %+v)", got, want, res)
	}
}

// TestScanHardLinkEditedInPlace (found in review): a large file with two
// hard links in the folder; one is deleted (its blocks are remembered
// under the inode both share), and the other, never renamed, is edited in
// the middle in place with size and mtime put back. It is hashed, not
// given the remembered blocks.
func TestScanHardLinkEditedInPlace(t *testing.T) {
	needCtime(t)
	const size = 12 << 20
	e := newScanEnv(t)
	data := e.writeRandom("a.img", 8, size)
	e.link("a.img", "b.img")
	e.scan()
	if err := os.Remove(filepath.Join(e.root, "a.img")); err != nil {
		t.Fatal(err)
	}
	e.scan("a.img", "b.img")
	off := int64(size / 2)
	tagInPlace(t, filepath.Join(e.root, "b.img"), off, "EDITED IN THE MIDDLE")
	copy(data[off:], "EDITED IN THE MIDDLE")
	res := e.scan("b.img")
	if _, want := chunkBlocks(data); e.rec("b.img").Content != want {
		t.Errorf("b.img edited in place (never renamed): content %s, want %s (scan: %+v)", e.rec("b.img").Content, want, res)
	}
}

// TestScanNewFileOnFreedInode (found in review): a large file is deleted
// and its deletion scanned (its blocks remembered); a new file with other
// content but the same size, first and last blocks, and its mtime set to
// the old one (cp -p, tar, a build's fixed mtime) gets the freed inode. It
// was born after the old file's record was made, so it is hashed. The file
// system's reuse of the inode is simulated: the remembered entry is moved
// to the new file's inode.
func TestScanNewFileOnFreedInode(t *testing.T) {
	const size = 12 << 20
	e := newScanEnv(t)
	data := e.writeRandom("fw.bin", 9, size)
	mtime := time.Unix(1, 0)
	p := filepath.Join(e.root, "fw.bin")
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	e.scan()
	old := e.rec("fw.bin")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	e.scan("fw.bin")
	time.Sleep(20 * time.Millisecond) // a birth time of its own
	copy(data[size/2:], "A NEW BUILD, THE SAME SIZE")
	e.write("fw.bin", string(data))
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	e.sc.movedMu.Lock()
	k := movedKey{old.Inode, old.Size, old.ModTime}
	m, ok := e.sc.moved[k]
	delete(e.sc.moved, k)
	e.sc.moved[movedKey{inode(fi), fi.Size(), fi.ModTime().UnixNano()}] = m
	e.sc.movedMu.Unlock()
	if !ok {
		t.Fatalf("the deleted file's blocks were not remembered")
	}
	res := e.scan("fw.bin")
	if _, want := chunkBlocks(data); e.rec("fw.bin").Content != want || res.Moved != 0 {
		t.Errorf("a new file on the freed inode: content %s, want %s (scan: %+v)", e.rec("fw.bin").Content, want, res)
	}
}

// TestScanStaleMovedEntryAfterRecordedEdit (found in review): a large
// file is renamed and scanned (the new path takes the remembered blocks,
// which stay remembered for movedFor), then edited in the middle in place
// with size and mtime put back, and that edit is scanned and recorded. A
// new path then turns up with the same inode: a hard link made to it, or
// a rename whose new half is scanned before its old half. Its change time
// is past the burial, so it is hashed: it gets the new content, not the
// remembered blocks.
func TestScanStaleMovedEntryAfterRecordedEdit(t *testing.T) {
	needCtime(t)
	const size = 12 << 20
	for _, tc := range []struct {
		name string
		then func(e *scanEnv) // makes x.mkv hold w.mkv's inode and scans it
	}{
		{"hard link, full scan", func(e *scanEnv) {
			e.link("w.mkv", "x.mkv")
			e.scan()
		}},
		{"rename, new half scanned first", func(e *scanEnv) {
			e.move("w.mkv", "x.mkv")
			e.scan("x.mkv")
			e.scan("w.mkv")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newScanEnv(t)
			data := e.writeRandom("v.mkv", 11, size)
			e.scan()
			e.move("v.mkv", "w.mkv")
			if res := e.scan(); res.Moved != 1 {
				t.Fatalf("scan after the rename: Moved %d, want 1", res.Moved)
			}
			off := int64(size / 2)
			tagInPlace(t, filepath.Join(e.root, "w.mkv"), off, "EDITED IN THE MIDDLE")
			copy(data[off:], "EDITED IN THE MIDDLE")
			e.scan()
			_, want := chunkBlocks(data)
			if got := e.rec("w.mkv").Content; got != want {
				t.Fatalf("w.mkv after its edit was scanned: %s, want %s", got, want)
			}
			tc.then(e)
			if got := e.rec("x.mkv").Content; got != want {
				t.Errorf("x.mkv (the same inode as w.mkv, whose edit was recorded): content %s, want %s", got, want)
			}
			res := e.scan()
			if got := e.rec("x.mkv").Content; got != want {
				t.Errorf("a full scan later: x.mkv content %s, want %s (scan: %+v)", got, want, res)
			}
		})
	}
}

// TestScanStaleHardLinkRecordRemembered (found in review): two hard links
// a.img and b.img of a large file are recorded. a.img is edited in the
// middle in place, size and mtime put back, and scanned alone (the watcher
// reports only the path written). b.img is then deleted and its deletion
// scanned: its record, which still holds the old content, is remembered.
// A new hard link c.img of a.img, made after that, is hashed and gets the
// new content.
func TestScanStaleHardLinkRecordRemembered(t *testing.T) {
	needCtime(t)
	const size = 12 << 20
	e := newScanEnv(t)
	data := e.writeRandom("a.img", 12, size)
	e.link("a.img", "b.img")
	e.scan()
	off := int64(size / 2)
	tagInPlace(t, filepath.Join(e.root, "a.img"), off, "EDITED IN THE MIDDLE")
	copy(data[off:], "EDITED IN THE MIDDLE")
	e.scan("a.img")
	_, want := chunkBlocks(data)
	if got := e.rec("a.img").Content; got != want {
		t.Fatalf("a.img after its edit was scanned: %s, want %s", got, want)
	}
	if err := os.Remove(filepath.Join(e.root, "b.img")); err != nil {
		t.Fatal(err)
	}
	e.scan("b.img")
	e.link("a.img", "c.img")
	res := e.scan()
	if got := e.rec("c.img").Content; got != want {
		t.Errorf("c.img (a hard link of a.img): content %s, want %s (scan: %+v)", got, want, res)
	}
	res = e.scan()
	if got := e.rec("c.img").Content; got != want {
		t.Errorf("a full scan later: c.img content %s, want %s (scan: %+v)", got, want, res)
	}
}
