package peer

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
)

// A file renamed or moved on a peer arrives here as a new file and a
// deletion of the old path. Its blocks are then all in a local file, so
// nothing crosses the network, but copying them still wrote every byte
// again, and the old file went into the trash: renaming a folder of videos
// cost a second copy on the disk until the trash was emptied. Now a new
// file whose content, mode and mtime are those of a file that the same
// pull pass deletes (a move source) is moved: its commit renames the old
// file to the new path (renameat2 with RENAME_NOREPLACE, one step: the
// inode never has two names, and a crash leaves it at one path or the
// other), and the old path's deletion then finds it gone. No block is read
// or written.
//
// The old file must be exactly as recorded (size, mtime, inode and change
// time, so not written since its last scan) and have no other name (a
// user's hard link), both when the pull takes it and again just before the
// rename, and nothing may be at the new path. Where any of that does not
// hold, the file is copied as before (a rename that fails at the commit is
// retried next pass, which finds the target taken or the source gone). A
// write that lands between the last check and the rename, keeping size
// and mtime, is not seen: the same window as the final check of any pull.

// A rename's deletion can also come first, in an earlier pull pass (the
// scanner writes the tombstones of a path that is gone before it walks the
// new one, index.buryGoneTargets): the old file is then in the trash, and
// its blocks are no longer in the index, so the new file was fetched from
// the peer again. A deleted file's trash entry is now remembered for a
// while (trashTTL) as a move source: a new file with its content, mode and
// mtime is moved out of the trash the same way, if the entry is still as
// it was put there (nothing else writes in the trash, but it is checked).

// trashed is a trash entry: its folder-relative path and its lstat.
type trashed struct {
	rel string
	fi  fs.FileInfo
}

// trashSource is a deleted file's trash entry, kept as a move source:
// what a new file must match (the deleted file's content, size, mode and
// mtime), and when it went into the trash.
type trashSource struct {
	trashed
	content     index.Hash
	size, mtime int64
	mode        uint32
	when        time.Time
	taken       bool
}

const (
	// trashTTL is how long a trash entry stays a move source.
	trashTTL = 10 * time.Minute
	// maxTrashSources bounds the trash entries kept as move sources.
	maxTrashSources = 20_000
)

// trashDeleted moves the file of the deletion j into the trash and keeps
// its entry as a move source. fi is the entry as applyDelete found it
// unchanged: another one moved (errChangedAtTrash) is put back.
func (f *folder) trashDeleted(j job, t at, fi fs.FileInfo) error {
	f.clearTempsUnder(t)
	_, e, err := f.trashEntry(j.path, t, false, true, fi)
	if err != nil || e.fi == nil || !e.fi.Mode().IsRegular() || nlinkOf(e.fi) != 1 {
		return err
	}
	r := j.local
	if !j.hasLocal || j.caseGone || r.Deleted || r.Kind != index.File || r.Size == 0 || e.fi.Size() != r.Size || e.fi.ModTime().UnixNano() != r.ModTime {
		return nil
	}
	now := f.e.o.Now()
	s := &trashSource{trashed: e, content: r.Content, size: r.Size, mtime: r.ModTime, mode: r.Mode, when: now}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.trashed == nil {
		f.trashed = map[index.Hash][]*trashSource{}
	}
	f.trashed[r.Content] = append(f.trashed[r.Content], s)
	f.trashQ = append(f.trashQ, s)
	f.pruneTrashed(now)
	return nil
}

// pruneTrashed forgets the trash sources older than trashTTL, and the
// oldest past maxTrashSources. Called with f.mu held.
func (f *folder) pruneTrashed(now time.Time) {
	for len(f.trashQ) > 0 && (len(f.trashQ) > maxTrashSources || now.Sub(f.trashQ[0].when) >= trashTTL) {
		s := f.trashQ[0]
		f.trashQ[0] = nil
		f.trashQ = f.trashQ[1:]
		if !s.taken {
			f.dropTrashed(s)
		}
	}
	if len(f.trashQ) == 0 {
		f.trashQ, f.trashed = nil, nil
	}
}

// dropTrashed removes s from f.trashed. Called with f.mu held.
func (f *folder) dropTrashed(s *trashSource) {
	list := slices.DeleteFunc(f.trashed[s.content], func(o *trashSource) bool { return o == s })
	if len(list) == 0 {
		delete(f.trashed, s.content)
	} else {
		f.trashed[s.content] = list
	}
}

// takeTrashed returns a trash source for the new file r and forgets it.
func (f *folder) takeTrashed(r index.Record) (*trashSource, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneTrashed(f.e.o.Now())
	for _, s := range f.trashed[r.Content] {
		if s.size == r.Size && s.mode == r.Mode && s.mtime == r.ModTime {
			s.taken = true
			f.dropTrashed(s)
			return s, true
		}
	}
	return nil, false
}

// sameStat reports whether a and b are the same regular file, unchanged
// (inode, size, mtime and change time).
func sameStat(a, b fs.FileInfo) bool {
	return a.Mode().IsRegular() && b.Mode().IsRegular() && inodeOf(a) == inodeOf(b) && a.Size() == b.Size() &&
		a.ModTime().Equal(b.ModTime()) && index.Ctime(a) == index.Ctime(b)
}

// moveSource is a file here whose path the running pull deletes.
type moveSource struct {
	path  string
	local index.Record
}

// addSources registers the deletions js of a pull pass whose local
// version is a regular file as move sources.
func (f *folder) addSources(js []job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range js {
		r := j.local
		if !j.hasLocal || r.Deleted || r.Kind != index.File || r.Size == 0 || r.Inode == 0 || r.Ctime == 0 {
			continue
		}
		if f.sources == nil {
			f.sources = map[index.Hash][]moveSource{}
		}
		f.sources[r.Content] = append(f.sources[r.Content], moveSource{j.path, r})
	}
}

// takeSource returns a move source for the new file r, taken: no other
// new file gets it.
func (f *folder) takeSource(r index.Record) (moveSource, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.sources[r.Content]
	for i, s := range list {
		if s.local.Size != r.Size || s.local.Mode != r.Mode || s.local.ModTime != r.ModTime {
			continue
		}
		f.sources[r.Content] = append(list[:i:i], list[i+1:]...)
		return s, true
	}
	return moveSource{}, false
}

// mayMove reports whether the new file of j has a move source, for the
// prefetcher: its block is not fetched ahead.
func (f *folder) mayMove(j job) bool {
	r := j.win
	if r.Kind != index.File || r.Size == 0 || (j.hasLocal && !j.local.Deleted) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sources[r.Content]) > 0 || len(f.trashed[r.Content]) > 0
}

// moveIn queues the new file j.win to be moved here from a move source
// (the commit renames it into place, commits.moveInto) and reports true,
// or reports false, having changed nothing, when no source fits or the
// new path is taken; the file is then pulled.
func (f *folder) moveIn(j job, p pending) bool {
	r := j.win
	if r.Kind != index.File || r.Size == 0 || (j.hasLocal && !j.local.Deleted) {
		return false
	}
	var from string
	var want func(fs.FileInfo) bool
	if src, ok := f.takeSource(r); ok {
		from = src.path
		want = func(fi fs.FileInfo) bool { return !changedOnDisk(fi, src.local) && !ctimeMoved(fi, src.local) }
	} else if ts, ok := f.takeTrashed(r); ok {
		from = ts.rel
		want = func(fi fs.FileInfo) bool { return sameStat(fi, ts.fi) }
	} else {
		return false
	}
	s, sd, err := f.entryAt(from, false)
	if err != nil {
		return false
	}
	defer sd.close()
	fi, err := s.lstat()
	if err != nil || !fi.Mode().IsRegular() || nlinkOf(fi) != 1 || !want(fi) || uint32(fi.Mode().Perm()) != r.Mode {
		return false
	}
	// The new path's directory, made if needed, and nothing at the path.
	d, err := f.openParent(j.path, j.path, true)
	if err != nil {
		return false
	}
	_, err = index.LstatAt(d.fd, p.base, p.target)
	d.close()
	if !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if h := f.e.o.hooks.beforeMoveQueued; h != nil {
		h(from)
	}
	p.movedFrom, p.movedStat = from, fi
	f.mu.Lock()
	f.doneBytes += r.Size
	f.moves++
	f.mu.Unlock()
	f.commits.add(p)
	return true
}

// errMoveLost: a move's source changed or went, or its target was taken,
// between the pull and the commit; the file is pulled next pass.
var errMoveLost = errors.New("its local copy changed before it could be moved here; pulled again")

// moveInto renames p's move source to p's target, in the directory the
// commit holds open, if the source is still as the pull found it and
// nothing is at the target.
func (f *folder) moveInto(p pending) error {
	s, sd, err := f.entryAt(p.movedFrom, false)
	if err != nil {
		return errMoveLost
	}
	defer sd.close()
	if h := f.e.o.hooks.beforeMoveRename; h != nil {
		h(p.movedFrom)
	}
	fi, err := s.lstat()
	if err != nil || !sameStat(fi, p.movedStat) || nlinkOf(fi) != 1 {
		return errMoveLost
	}
	err = unix.Renameat2(s.dirfd, s.name, p.parent.fd, p.base, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		if h := f.e.o.hooks.afterMoveRename; h != nil {
			h(p.j.path)
		}
		return nil
	case err == unix.EEXIST, err == unix.EXDEV, unsupportedRename(err):
		return errMoveLost // taken meanwhile, another file system, no such rename here
	}
	return &os.LinkError{Op: "rename", Old: s.full, New: p.target, Err: err}
}

func nlinkOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
