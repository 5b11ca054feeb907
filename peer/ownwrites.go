package peer

import (
	"io/fs"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The watcher reports every file the puller renames into place, and each
// report used to cost a targeted scan: an lstat, an index lookup and a
// compare, on the folder's loop between pull passes. After a pull of 10,000
// small files that was 0.3-0.5 s before the folder was idle again. The
// puller now notes what it installed (ownWrites); a reported path whose
// lstat still matches exactly, ctime included, is dropped from the scan. Any
// later change to the file (a write, a chmod, a rename over it) changes its
// ctime or inode, so it is scanned as before.

// maxOwnWrites bounds the notes kept while the watcher is not consuming
// them (it stopped, or is degraded to periodic rescans): beyond it they are
// dropped, which only means scanning again.
const maxOwnWrites = 50_000

// A directory the puller made is noted too, if it was still empty once
// watched (index.Scanner.WatchDir): a report of a directory costs a walk
// of it, one lstat per entry, and after a pull of a new tree that walk of
// every new directory was the last 0.1-0.3 s before the folder was idle.
// For a directory its inode, mode and birth time are compared, not its
// mtime and ctime, which change with every file put in it; what others put
// in it after it was watched is reported on its own. The birth time tells
// it from a new directory that got the same inode number (removed and made
// again by someone else before the report); without one it is not noted.

// ownStat is what identifies a file the puller installed; for a directory
// (dir), only ino, mode and btime (birth time).
type ownStat struct {
	size, mtime, ctime int64
	ino                uint64
	mode               fs.FileMode
	dir                bool
	btime              int64
}

// birthOf returns the birth time of p (not following a link), if the file
// system keeps one.
func birthOf(p string) (int64, bool) {
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &sx); err != nil || sx.Mask&unix.STATX_BTIME == 0 {
		return 0, false
	}
	return sx.Btime.Sec*1e9 + int64(sx.Btime.Nsec), true
}

func ownStatOf(fi fs.FileInfo) (ownStat, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ownStat{}, false
	}
	return ownStat{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ctime: st.Ctim.Nano(), ino: st.Ino, mode: fi.Mode()}, true
}

type ownWrites struct {
	mu      sync.Mutex
	seen    map[string]ownStat // folder-relative path -> what was installed
	skipped int                // paths filtered out so far (for tests)
	// force holds paths that must be scanned even once the puller has
	// installed something there (mustScan).
	force map[string]bool
}

// mustScan makes the next note of path void, so that its scan is not
// skipped: a directory moved aside there (a conflict copy) leaves records
// below path that only a scan of path buries. Without it, the file put in
// its place was noted as the puller's own, the scan was skipped, and peers
// were told for ever of files below a path that was a file.
func (o *ownWrites) mustScan(path string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.force == nil || len(o.force) >= maxOwnWrites {
		o.force = map[string]bool{}
	}
	o.force[path] = true
	delete(o.seen, path)
}

// note records that path now holds what fi describes, installed by us.
func (o *ownWrites) note(path string, fi fs.FileInfo) {
	s, ok := ownStatOf(fi)
	if !ok {
		return
	}
	o.add(path, s)
}

// noteDir records that path (at abs) is a directory we made (fi) and that
// was watched while empty.
func (o *ownWrites) noteDir(path, abs string, fi fs.FileInfo) {
	if s, ok := dirStatOf(abs, fi); ok {
		o.add(path, s)
	}
}

// dirStatOf is what identifies the directory at abs (fi): its inode, mode
// and birth time.
func dirStatOf(abs string, fi fs.FileInfo) (ownStat, bool) {
	s, ok := ownStatOf(fi)
	bt, hasBirth := birthOf(abs)
	if !ok || !hasBirth || !fi.IsDir() {
		return ownStat{}, false
	}
	return ownStat{ino: s.ino, mode: s.mode, dir: true, btime: bt}, true
}

func (o *ownWrites) add(path string, s ownStat) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.force[path] {
		delete(o.force, path)
		return
	}
	if o.seen == nil || len(o.seen) >= maxOwnWrites {
		o.seen = map[string]ownStat{}
	}
	o.seen[path] = s
}

// reset forgets every note (a full scan compares everything anyway).
func (o *ownWrites) reset() {
	o.mu.Lock()
	o.seen, o.force = nil, nil
	o.mu.Unlock()
}

// filter returns paths without those that still hold exactly what the
// puller installed there; each note is used once.
func (o *ownWrites) filter(root string, paths []string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		return paths
	}
	out := paths[:0:0]
	for _, p := range paths {
		want, ok := o.seen[p]
		if ok {
			delete(o.seen, p)
			abs := nativePath(root, p)
			if fi, err := os.Lstat(abs); err == nil {
				got, ok := ownStatOf(fi)
				if want.dir {
					got, ok = dirStatOf(abs, fi)
				}
				if ok && got == want {
					o.skipped++
					continue
				}
			}
		}
		out = append(out, p)
	}
	return out
}
