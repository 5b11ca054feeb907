package index

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncd-project/syncd/transport/deviceid"
)

const self = 0x5e1f

type scanEnv struct {
	t    *testing.T
	root string
	st   *Store
	sc   *Scanner
}

func newScanEnv(t *testing.T) *scanEnv {
	root := t.TempDir()
	st := openTest(t, "")
	return &scanEnv{t: t, root: root, st: st, sc: NewScanner(st, "f", root, ScanOptions{Self: self, Workers: 2})}
}

func (e *scanEnv) write(rel, data string) {
	e.t.Helper()
	p := filepath.Join(e.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *scanEnv) scan(paths ...string) ScanResult {
	e.t.Helper()
	res, err := e.sc.Scan(context.Background(), paths...)
	if err != nil {
		e.t.Fatalf("Scan(%v) = %v", paths, err)
	}
	return res
}

func (e *scanEnv) rec(rel string) Record {
	e.t.Helper()
	r, ok, err := e.st.Local("f", rel)
	if err != nil || !ok {
		e.t.Fatalf("Local(%q) = %v, %v, want a record", rel, ok, err)
	}
	if err := r.Validate(); err != nil {
		e.t.Errorf("Local(%q) invalid: %v", rel, err)
	}
	return r
}

// seq is the folder's last local sequence.
func (e *scanEnv) seq() uint64 {
	e.t.Helper()
	seq, err := e.st.LocalSeq("f")
	if err != nil {
		e.t.Fatal(err)
	}
	return seq
}

// wantSeq fails the test if anything was written for peers (a new
// sequence) since seq.
func (e *scanEnv) wantSeq(seq uint64, after string) {
	e.t.Helper()
	if now := e.seq(); now != seq {
		e.t.Errorf("LocalSeq after %s = %d, want %d (nothing for peers)", after, now, seq)
	}
}

func checkRes(t *testing.T, name string, got, want ScanResult) {
	t.Helper()
	got.Bytes, want.Bytes = 0, 0
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Scan(%s) result differs (-want +got):\n%s", name, d)
	}
}

func TestScanLifecycle(t *testing.T) {
	fixedClock(t, 0)
	e := newScanEnv(t)
	e.write("a.txt", "hello")
	e.write("dir/b.bin", string(make([]byte, 3<<20)))
	e.write("dir/sub/c", "")
	if err := os.Symlink("../a.txt", filepath.Join(e.root, "dir/link")); err != nil {
		t.Fatal(err)
	}
	checkRes(t, "first", e.scan(), ScanResult{Files: 3, Dirs: 2, Symlinks: 1, Changed: 6})
	a := e.rec("a.txt")
	want := Record{Path: "a.txt", Kind: File, Size: 5, Mode: 0o644, HashVersion: HashVersion, Modifier: self}
	blocks, id := chunkBlocks([]byte("hello"))
	want.Blocks, want.Content = blocks, id
	want.Version = Vector{{self, 1}}
	want.ModTime, want.Inode, want.Sequence = a.ModTime, a.Inode, a.Sequence
	if fi, err := os.Lstat(filepath.Join(e.root, "a.txt")); err == nil {
		want.Ctime = Ctime(fi)
	}
	if d := cmp.Diff(want, a); d != "" {
		t.Errorf("record of a.txt differs (-want +got):\n%s", d)
	}
	if l := e.rec("dir/link"); l.Kind != Symlink || l.Target != "../a.txt" {
		t.Errorf("record of dir/link = %+v, want symlink to ../a.txt", l)
	}
	if c := e.rec("dir/sub/c"); c.Size != 0 || len(c.Blocks) != 0 || c.Content != ContentID(0, nil) {
		t.Errorf("record of empty file = %+v", c)
	}
	seq := e.seq()

	// Unchanged: nothing written.
	checkRes(t, "unchanged", e.scan(), ScanResult{Files: 3, Dirs: 2, Symlinks: 1})
	e.wantSeq(seq, "unchanged rescan")

	// Modified.
	e.write("a.txt", "hello, world")
	checkRes(t, "modified", e.scan(), ScanResult{Files: 3, Dirs: 2, Symlinks: 1, Changed: 1})
	if a2 := e.rec("a.txt"); a2.Size != 12 || a2.Version.Compare(a.Version) != Greater || a2.Sequence <= seq {
		t.Errorf("modified a.txt = %+v, want size 12, newer version, new sequence", a2)
	}

	// Renamed: old path tombstoned, new path with the same content.
	if err := os.Rename(filepath.Join(e.root, "dir/b.bin"), filepath.Join(e.root, "b2.bin")); err != nil {
		t.Fatal(err)
	}
	checkRes(t, "renamed", e.scan(), ScanResult{Files: 3, Dirs: 2, Symlinks: 1, Changed: 1, Deleted: 1})
	old, nw := e.rec("dir/b.bin"), e.rec("b2.bin")
	if !old.Deleted || old.Version.Counter(self) < 2 || len(old.Blocks) != 0 {
		t.Errorf("renamed-from record = %+v, want tombstone with bumped version", old)
	}
	if nw.Content != ContentID(3<<20, nw.Blocks) || nw.Size != 3<<20 {
		t.Errorf("renamed-to record = %+v", nw)
	}
	if locs, _ := e.st.BlockLocations(nw.Blocks[0].Hash, 0); len(locs) != 1 || locs[0].Path != "b2.bin" {
		t.Errorf("BlockLocations after rename = %v, want [b2.bin]", locs)
	}

	// Deleted directory: everything under it tombstoned.
	if err := os.RemoveAll(filepath.Join(e.root, "dir")); err != nil {
		t.Fatal(err)
	}
	checkRes(t, "deleted dir", e.scan(), ScanResult{Files: 2, Deleted: 4})
	for _, p := range []string{"dir", "dir/sub", "dir/sub/c", "dir/link"} {
		if r := e.rec(p); !r.Deleted {
			t.Errorf("record of %s after rm -r = %+v, want deleted", p, r)
		}
	}
	// A tombstone stays a tombstone (not rewritten).
	checkRes(t, "after delete", e.scan(), ScanResult{Files: 2})
	// Recreated: a new version above the tombstone.
	e.write("dir/sub/c", "back")
	checkRes(t, "recreated", e.scan("dir"), ScanResult{Files: 1, Dirs: 2, Changed: 3})
	if r := e.rec("dir/sub/c"); r.Deleted || r.Version.Counter(self) < 3 {
		t.Errorf("recreated record = %+v", r)
	}
}

func chunkBlocks(b []byte) ([]Block, Hash) {
	var blocks []Block
	_ = Chunk(bytesReader(b), func(bl Block, _ []byte) error { blocks = append(blocks, bl); return nil })
	return blocks, ContentID(int64(len(b)), blocks)
}

func TestScanTargeted(t *testing.T) {
	e := newScanEnv(t)
	e.write("x/1", "1")
	e.write("y/2", "2")
	e.scan()
	e.write("x/1", "one")
	e.write("y/2", "two")
	checkRes(t, "x only", e.scan("x"), ScanResult{Files: 1, Dirs: 1, Changed: 1})
	if r := e.rec("y/2"); r.Size != 1 {
		t.Errorf("y/2 rescanned by Scan(x): %+v", r)
	}
	if err := os.Remove(filepath.Join(e.root, "y/2")); err != nil {
		t.Fatal(err)
	}
	checkRes(t, "removed file", e.scan("y/2"), ScanResult{Deleted: 1})
	// A parent replaced by a symlink is never followed.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "1"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.root, "x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, filepath.Join(e.root, "x")); err != nil {
		t.Fatal(err)
	}
	checkRes(t, "symlinked parent", e.scan("x/1"), ScanResult{Deleted: 1})
	if r := e.rec("x/1"); !r.Deleted {
		t.Errorf("x/1 behind a symlinked parent = %+v, want deleted", r)
	}
}

func TestScanPullerRecordUnchanged(t *testing.T) {
	e := newScanEnv(t)
	e.write("p", "pulled")
	fi, _ := os.Lstat(filepath.Join(e.root, "p"))
	blocks, id := chunkBlocks([]byte("pulled"))
	remote := Vector{{99, 4}}
	_, err := e.st.PutLocal("f", Record{Path: "p", Kind: File, Size: 6, Mode: 0o644, ModTime: fi.ModTime().UnixNano(),
		Inode: inode(fi), Blocks: blocks, Content: id, Version: remote, HashVersion: HashVersion})
	if err != nil {
		t.Fatal(err)
	}
	checkRes(t, "after pull", e.scan(), ScanResult{Files: 1})
	if r := e.rec("p"); !cmp.Equal(r.Version, remote) {
		t.Errorf("pulled record version = %v, want %v (untouched)", r.Version, remote)
	}
}

// needCtime skips a test of change times where they are not read (Ctime
// is 0 off Linux).
func needCtime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("change times are read on Linux only")
	}
}

// tagInPlace rewrites part of the file at p in place, then puts its mtime
// back, as a photo or music tagger that preserves timestamps does. It
// first waits for the file system's clock to move on, so that the write
// gets a change time of its own.
func tagInPlace(t *testing.T, p string, off int64, data string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Lstat(p); err != nil || after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("the edit changed size or mtime: %v", err)
	}
}

// TestScanEditKeepingSizeAndMtime edits a file in place and puts its size
// and mtime back: its change time tells the scanner, which hashes it again
// and records the new content as a new version.
func TestScanEditKeepingSizeAndMtime(t *testing.T) {
	needCtime(t)
	e := newScanEnv(t)
	e.write("song.flac", "title: old song")
	checkRes(t, "first", e.scan(), ScanResult{Files: 1, Changed: 1})
	before := e.rec("song.flac")
	tagInPlace(t, filepath.Join(e.root, "song.flac"), 7, "new")
	checkRes(t, "tagged", e.scan(), ScanResult{Files: 1, Changed: 1})
	after := e.rec("song.flac")
	if _, want := chunkBlocks([]byte("title: new song")); after.Content != want {
		t.Errorf("content after the edit = %s, want %s (the new bytes)", after.Content, want)
	}
	if cmp.Equal(after.Version, before.Version) {
		t.Errorf("version after the edit = %v, the same as before", after.Version)
	}
}

// TestScanNewCtimeSameFile changes only a file's change time (a chmod to
// the mode it has): the scanner hashes it again, finds the same file, and
// records the new change time under the same version (peers find nothing
// to do), and the next scan hashes nothing.
func TestScanNewCtimeSameFile(t *testing.T) {
	needCtime(t)
	e := newScanEnv(t)
	e.write("photo.jpg", "pixels")
	e.scan()
	before := e.rec("photo.jpg")
	seq := e.seq()
	p := filepath.Join(e.root, "photo.jpg")
	time.Sleep(20 * time.Millisecond)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := e.scan(); res.Changed != 0 || res.Bytes != 6 {
		t.Errorf("scan after chmod: %+v, want nothing changed and the 6 bytes hashed again", res)
	}
	e.wantSeq(seq, "chmod")
	after := e.rec("photo.jpg")
	if !cmp.Equal(after.Version, before.Version) || after.Content != before.Content {
		t.Errorf("after chmod: version %v, content %s; want %v, %s (unchanged)", after.Version, after.Content, before.Version, before.Content)
	}
	if after.Ctime == before.Ctime {
		t.Errorf("recorded change time stayed %d after the chmod", after.Ctime)
	}
	if res := e.scan(); res.Changed != 0 || res.Bytes != 0 {
		t.Errorf("third scan: %+v, want nothing hashed", res)
	}
}

// TestScanLearnsCtime gives a record written without a change time (as
// before change times were recorded) the file's, under the same version,
// so that a later edit keeping size and mtime is seen.
func TestScanLearnsCtime(t *testing.T) {
	needCtime(t)
	e := newScanEnv(t)
	e.write("song.flac", "title: old song")
	e.scan()
	r := e.rec("song.flac")
	r.Ctime = 0
	if _, err := e.st.PutLocal("f", r); err != nil {
		t.Fatal(err)
	}
	seq := e.seq()
	checkRes(t, "learn", e.scan(), ScanResult{Files: 1})
	e.wantSeq(seq, "learning")
	learned := e.rec("song.flac")
	fi, err := os.Lstat(filepath.Join(e.root, "song.flac"))
	if err != nil {
		t.Fatal(err)
	}
	if learned.Ctime != Ctime(fi) || !cmp.Equal(learned.Version, r.Version) || learned.Content != r.Content {
		t.Errorf("after a scan: ctime %d, version %v; want %d, %v and the same content", learned.Ctime, learned.Version, Ctime(fi), r.Version)
	}
	tagInPlace(t, filepath.Join(e.root, "song.flac"), 7, "new")
	checkRes(t, "tagged", e.scan(), ScanResult{Files: 1, Changed: 1})
}

// TestScanEditedWhileHashingKeepingMtime edits a file in place while it is
// hashed and puts size and mtime back: only its change time shows it, and
// the file is left for the next scan rather than recorded with what was
// read before the edit.
func TestScanEditedWhileHashingKeepingMtime(t *testing.T) {
	needCtime(t)
	e := newScanEnv(t)
	e.write("song.flac", "title: old song")
	first := true
	e.sc.hooks.afterHash = func(rel string) {
		if first {
			first = false
			tagInPlace(t, filepath.Join(e.root, rel), 7, "new")
		}
	}
	checkRes(t, "busy", e.scan(), ScanResult{Files: 1, Busy: 1})
	if _, ok, _ := e.st.Local("f", "song.flac"); ok {
		t.Fatalf("file edited while hashing was recorded")
	}
	checkRes(t, "retry", e.scan(), ScanResult{Files: 1, Changed: 1})
	if _, want := chunkBlocks([]byte("title: new song")); e.rec("song.flac").Content != want {
		t.Errorf("recorded content is not the edited file's")
	}
}

func TestScanIgnored(t *testing.T) {
	e := newScanEnv(t)
	e.write(IgnoreFile, "*.log\n/build/\n")
	e.write("a.log", "x")
	e.write("build/out", "x")
	e.write("src/build/keep", "x")
	e.write(".syncd/trash/t", "x")
	e.write("d/"+TempPrefix+"123", "x")
	e.write("ok", "x")
	checkRes(t, "ignored", e.scan(), ScanResult{Files: 2, Dirs: 3, Changed: 5})
	// The ignore file is each device's own: not recorded, not synced.
	for _, p := range []string{"a.log", "build", "build/out", ".syncd", ".syncd/trash/t", "d/" + TempPrefix + "123", IgnoreFile} {
		if _, ok, _ := e.st.Local("f", p); ok {
			t.Errorf("ignored path %s has a record", p)
		}
	}
	for _, p := range []string{"src/build/keep", "ok", "d"} {
		e.rec(p)
	}
	// Targeted scans respect ignores too.
	checkRes(t, "targeted ignored", e.scan("a.log", "build/out", ".syncd/trash/t"), ScanResult{})
	// Newly ignored records are left alone (not tombstoned).
	e.write(IgnoreFile, "*.log\n/build/\nok\n")
	res := e.scan()
	if r := e.rec("ok"); r.Deleted || res.Deleted != 0 {
		t.Errorf("newly ignored file tombstoned: %+v, %+v", r, res)
	}
	// An unreadable ignore file fails the scan rather than syncing everything.
	e.write(IgnoreFile, string(make([]byte, 2<<20)))
	if _, err := e.sc.Scan(context.Background()); err == nil {
		t.Errorf("Scan with a 2 MiB ignore file = nil error, want error")
	}
}

// TestScanChangedWhileHashing appends to a file right after it was hashed:
// the scan must not record it, and the next scan records the right hash.
func TestScanChangedWhileHashing(t *testing.T) {
	e := newScanEnv(t)
	e.write("busy", "first")
	first := true
	e.sc.hooks.afterHash = func(rel string) {
		if rel == "busy" && first {
			first = false
			f, err := os.OpenFile(filepath.Join(e.root, "busy"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = f.WriteString(" and more")
			f.Close()
		}
	}
	checkRes(t, "busy", e.scan(), ScanResult{Files: 1, Busy: 1})
	if _, ok, _ := e.st.Local("f", "busy"); ok {
		t.Fatalf("file changed while hashing was recorded")
	}
	// A targeted scan of something else still retries the busy file.
	e.write("other", "o")
	checkRes(t, "retry", e.scan("other"), ScanResult{Files: 2, Changed: 2})
	want, _ := chunkBlocks([]byte("first and more"))
	if r := e.rec("busy"); r.Size != 14 || !cmp.Equal(r.Blocks, want) {
		t.Errorf("busy after retry = %+v, want 14 bytes", r)
	}
}

// TestScanGrewBeforeRead appends to a file between the walk's stat and the
// read, which reads only the size the walk saw: the scan must not record
// that prefix as the file.
func TestScanGrewBeforeRead(t *testing.T) {
	e := newScanEnv(t)
	e.write("growing", "first")
	e.sc.hooks.open = func(name string) (*os.File, error) {
		if filepath.Base(name) == "growing" {
			f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			_, _ = f.WriteString(" and more")
			f.Close()
		}
		return os.Open(name)
	}
	checkRes(t, "grew", e.scan(), ScanResult{Files: 1, Busy: 1})
	if r, ok, _ := e.st.Local("f", "growing"); ok {
		t.Fatalf("file that grew before its read recorded as %d bytes", r.Size)
	}
	e.sc.hooks.open = nil
	checkRes(t, "retry", e.scan(), ScanResult{Files: 1, Changed: 1})
	if r := e.rec("growing"); r.Size != 14 {
		t.Errorf("growing after retry = %d bytes, want 14", r.Size)
	}
}

// TestScanPermissionDenied: tests run as root, which bypasses file modes,
// so the failure is injected through the open hook (a file) and by a real
// mode-000 directory when not root.
func TestScanPermissionDenied(t *testing.T) {
	e := newScanEnv(t)
	e.write("secret", "s")
	e.write("fine", "f")
	e.sc.hooks.open = func(name string) (*os.File, error) {
		if filepath.Base(name) == "secret" {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.Open(name)
	}
	checkRes(t, "denied", e.scan(), ScanResult{Files: 2, Changed: 1, Errors: 1})
	if _, ok, _ := e.st.Local("f", "secret"); ok {
		t.Errorf("unreadable file recorded")
	}
	e.rec("fine")
	e.sc.hooks.open = nil
	checkRes(t, "readable again", e.scan(), ScanResult{Files: 2, Changed: 1})
	e.rec("secret")
}

// TestScanUnreadableDirKeepsRecords: a directory that cannot be listed
// (injected through the readDir hook, since root reads mode-000
// directories) must not have its records tombstoned.
func TestScanUnreadableDirKeepsRecords(t *testing.T) {
	e := newScanEnv(t)
	e.write("locked/x", "x")
	e.write("open/y", "y")
	e.scan()
	e.sc.hooks.readDir = func(name string) ([]fs.DirEntry, error) {
		if filepath.Base(name) == "locked" {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.ReadDir(name)
	}
	checkRes(t, "unreadable dir", e.scan(), ScanResult{Files: 1, Dirs: 2, Errors: 1})
	if r := e.rec("locked/x"); r.Deleted {
		t.Errorf("record under unreadable dir tombstoned: %+v", r)
	}
}

// TestScanAbsentFolderKeepsRecords: a folder that is not there (an
// unmounted drive's empty mount point) loses no record to a scan, full or
// targeted, and what is written there is not recorded; a folder that goes
// away during the walk loses no record either. Once it is there, what is
// gone becomes tombstones.
func TestScanAbsentFolderKeepsRecords(t *testing.T) {
	e := newScanEnv(t)
	e.write("a", "a")
	e.write("d/b", "b")
	e.scan()
	for _, n := range []string{"a", "d"} {
		if err := os.RemoveAll(filepath.Join(e.root, n)); err != nil {
			t.Fatal(err)
		}
	}
	e.write(".DS_Store", "written into the mount point")
	seq := e.seq()
	errAbsent := errors.New("not mounted")
	asked := 0
	e.sc.o.Present = func() error { asked++; return errAbsent }
	for _, paths := range [][]string{nil, {"a"}, {"d"}, {".DS_Store"}} {
		if _, err := e.sc.Scan(context.Background(), paths...); !errors.Is(err, errAbsent) {
			t.Errorf("Scan(%v) of an absent folder = %v, want %v", paths, err, errAbsent)
		}
	}
	if asked != 4 {
		t.Errorf("Present asked %d times, want 4 (once per scan, which then stops)", asked)
	}
	e.wantSeq(seq, "scans of an absent folder")

	// There when the walk starts, gone from then on: asked again before
	// any tombstone is written (during the walk or at its end).
	e.sc.o.Present = func() error {
		asked++
		if asked > 1 {
			return errAbsent
		}
		return nil
	}
	asked = 0
	if _, err := e.sc.Scan(context.Background()); !errors.Is(err, errAbsent) || asked < 2 {
		t.Errorf("Scan of a folder gone during the walk = %v after %d questions, want %v after 2 or more", err, asked, errAbsent)
	}
	for _, p := range []string{"a", "d", "d/b"} {
		if r := e.rec(p); r.Deleted {
			t.Errorf("%s tombstoned while the folder was absent", p)
		}
	}
	e.sc.o.Present = func() error { return nil }
	checkRes(t, "present again", e.scan(), ScanResult{Files: 1, Deleted: 3})
}

func TestScanCancel(t *testing.T) {
	e := newScanEnv(t)
	for i := range 50 {
		e.write(filepath.Join("d", string(rune('a'+i%26))+time.Duration(i).String()), "x")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.sc.Scan(ctx); err == nil {
		t.Errorf("Scan(cancelled) = nil, want context error")
	}
}

func bytesReader(b []byte) *bytesR { return &bytesR{b: b} }

type bytesR struct{ b []byte }

func (r *bytesR) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestScanAboveOwnPastVersions: a path this device has no record of, but
// of which a peer holds a version this device wrote (its records forgotten
// or lost), gets a version that is not dominated by, or equal to, that
// one; a path no peer has from this device gets the first version.
func TestScanAboveOwnPastVersions(t *testing.T) {
	fixedClock(t, 0) // the counters the peer saw, not the clock, are under test
	e := newScanEnv(t)
	dev := deviceid.ID{0xd}
	other := dev.Key()
	mine := fileRecord("mine", 5, 5) // last written here, as the peer saw it
	mine.Version = Vector{{Device: self, Value: 3}}
	both := fileRecord("both", 5, 5) // written here, then edited on the peer
	both.Version = Vector{{Device: self, Value: 2}, {Device: other, Value: 4}}
	if other < self {
		both.Version[0], both.Version[1] = both.Version[1], both.Version[0]
	}
	theirs := fileRecord("theirs", 5, 5) // never written here
	theirs.Version = Vector{{Device: other, Value: 7}}
	if err := e.st.PutRemote("f", dev, 1, mine, both, theirs); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"mine", "both", "theirs", "new"} {
		e.write(p, "edited here")
	}
	e.scan()
	for _, c := range []struct {
		path   string
		remote Vector
		want   Ordering
	}{
		{"mine", mine.Version, Greater},
		{"both", both.Version, Concurrent},
		{"theirs", theirs.Version, Concurrent},
	} {
		if got := e.rec(c.path).Version.Compare(c.remote); got != c.want {
			t.Errorf("%s: the new local version %v is %v against the peer's %v, want %v", c.path, e.rec(c.path).Version, got, c.remote, c.want)
		}
	}
	for _, p := range []string{"new", "theirs"} { // nothing of this device's to go above
		if v := e.rec(p).Version; !cmp.Equal(v, Vector{{Device: self, Value: 1}}) {
			t.Errorf("%s: version %v, want the first, {self: 1}", p, v)
		}
	}
}

// TestUnsyncableNames: names no record can hold (not UTF-8, a backslash,
// a symlink's target that is not UTF-8) are skipped, counted and named in
// one warning each, once, and the rest of the folder, their directory
// included, goes on syncing: the index stays readable.
func TestUnsyncableNames(t *testing.T) {
	e := newScanEnv(t)
	var logs bytes.Buffer
	e.sc = NewScanner(e.st, "f", e.root, ScanOptions{Self: self, Workers: 2,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	e.write("d/caf\xe9.mp3", "latin-1 name")
	e.write(`d/AC\DC - Back in Black.mp3`, "song")
	e.write("d/ok.mp3", "ok")
	if err := os.Symlink("caf\xe9.mp3", filepath.Join(e.root, "d/link")); err != nil {
		t.Fatal(err)
	}
	res := e.scan()
	if res.Unsyncable != 3 || res.Errors != 0 {
		t.Errorf("scan = %+v, want 3 unsyncable names and no errors", res)
	}
	e.rec("d/ok.mp3")
	if err := e.st.LocalSince("f", 0, func(Record) error { return nil }); err != nil {
		t.Errorf("LocalSince (what peers are served) = %v", err)
	}
	for _, want := range []string{`not valid UTF-8; rename it`, `contains a backslash; rename it`, `target \"caf\\xe9.mp3\" is not valid UTF-8`} {
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("%d warnings with %q, want 1; log:\n%s", n, want, logs.String())
		}
	}

	e.write("d/ok2.mp3", "next to them")
	res = e.scan("d/caf\xe9.mp3", "d/ok2.mp3")
	if res.Unsyncable != 1 {
		t.Errorf("scan of the paths = %+v, want the non-UTF-8 one counted", res)
	}
	e.rec("d/ok2.mp3")
	if res := e.scan(); res.Unsyncable != 3 {
		t.Errorf("second full scan = %+v, want 3 unsyncable names", res)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 3 {
		t.Errorf("%d warnings after three scans, want 3 (each name once); log:\n%s", n, logs.String())
	}
}

// statEntry is a directory entry from an lstat made earlier.
type statEntry struct{ fi fs.FileInfo }

func (d statEntry) Name() string               { return d.fi.Name() }
func (d statEntry) IsDir() bool                { return d.fi.IsDir() }
func (d statEntry) Type() fs.FileMode          { return d.fi.Mode().Type() }
func (d statEntry) Info() (fs.FileInfo, error) { return d.fi, nil }

// TestFIFOSwappedIn: a file replaced by a FIFO between the walk's lstat
// and the open is neither waited on nor read; the scan ends, and the next
// one skips the FIFO as a special file.
func TestFIFOSwappedIn(t *testing.T) {
	e := newScanEnv(t)
	e.write("pipe", "was a file")
	e.write("ok", "ok")
	e.sc.hooks.readDir = func(name string) ([]fs.DirEntry, error) {
		ents, err := os.ReadDir(name)
		if err != nil {
			return nil, err
		}
		out := make([]fs.DirEntry, len(ents))
		for i, de := range ents {
			fi, err := de.Info() // the walk's lstat
			if err != nil {
				return nil, err
			}
			out[i] = statEntry{fi}
		}
		p := filepath.Join(name, "pipe")
		if err := os.Remove(p); err != nil {
			t.Error(err)
		}
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Error(err)
		}
		return out, nil
	}
	done := make(chan ScanResult, 1)
	go func() { done <- e.scan() }()
	select {
	case res := <-done:
		if res.Busy != 1 {
			t.Errorf("scan = %+v, want the swapped file left for the next scan", res)
		}
	case <-time.After(10 * time.Second):
		// Let the blocked open return, so that the test can end.
		if f, err := os.OpenFile(filepath.Join(e.root, "pipe"), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		<-done
		t.Fatal("the scan blocked in the open of a FIFO put in a file's place")
	}
	e.rec("ok")
	e.sc.hooks.readDir = nil
	if res := e.scan(); res.Busy != 0 || res.Errors != 0 {
		t.Errorf("next scan = %+v", res)
	}
	if _, ok, _ := e.st.Local("f", "pipe"); ok {
		t.Error("the FIFO has a record")
	}
}
