package peer

import (
	"errors"
	"io/fs"
	"path"
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
// pull pass deletes (a move source) takes the old file's inode: a hard
// link as its temp file, then its commit renames the temp file into place
// and, in the same step, removes the old name (commits.moveDone), so that
// no two live paths ever share the inode. The old path's deletion then
// finds it gone. No block is read or written.
//
// The old file must be exactly as recorded (size, mtime, inode and change
// time, so not written since its last scan) and have no other name (a
// user's hard link, a version in the trash), or its content would end up
// shared with a path that lives on; each source serves one new file. Until
// the commit, the temp file is the only other name; the commit checks that
// its change time is still the one it had once linked (a write through a
// descriptor held open on the old file would move it), or drops the temp
// file (only a name) and the file is pulled next pass. A temp file with
// more than one name is never resumed (applyFile). Where any of that does
// not hold, or the link fails (another file system under the folder, one
// without hard links), the file is copied as before.

// A rename's deletion can also come first, in an earlier pull pass (the
// scanner writes the tombstones of a path that is gone before it walks the
// new one, index.buryGoneTargets): the old file is then in the trash, and
// its blocks are no longer in the index, so the new file was fetched from
// the peer again. A deleted file's trash entry is now remembered for a
// while (trashTTL) as a move source: a new file with its content, mode and
// mtime takes the entry's inode by a hard link, if it is still as it was
// put there (nothing else writes in the trash, but it is checked), and the
// entry is removed once the new file is in place and recorded. A temp
// file that fails on the way is only a second name: the trash keeps its.

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
// its entry as a move source.
func (f *folder) trashDeleted(j job, t at) error {
	f.clearTempsUnder(t)
	_, e, err := f.trashEntry(j.path, t, false, true)
	if err != nil || e.fi == nil || !e.fi.Mode().IsRegular() || nlinkOf(e.fi) != 1 {
		return err
	}
	r := j.local
	if !j.hasLocal || r.Deleted || r.Kind != index.File || r.Size == 0 || e.fi.Size() != r.Size || e.fi.ModTime().UnixNano() != r.ModTime {
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

// untrash links the trash source src as p's temp file, if it is as it was
// put in the trash; the commit removes the entry once the file is in place.
// Until then the trash keeps it, whatever becomes of the temp file.
func (f *folder) untrash(j job, src *trashSource, p pending) (pending, bool) {
	s, sd, err := f.entryAt(src.rel, false)
	if err != nil {
		return p, false
	}
	defer sd.close()
	fi, err := s.lstat()
	if err != nil || !sameStat(fi, src.fi) || nlinkOf(fi) != 1 {
		return p, false
	}
	return f.linkTemp(j, s, fi, src.rel, p)
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

// moveIn gives the new file j.win the inode of a move source through a hard
// link as its temp file, and queues its commit (the final check, the
// rename into place and the removal of the source's name). It reports
// false, having changed nothing, when no source fits; the file is then
// pulled.
func (f *folder) moveIn(j job, p pending) bool {
	r := j.win
	if r.Kind != index.File || r.Size == 0 || (j.hasLocal && !j.local.Deleted) {
		return false
	}
	if src, ok := f.takeSource(r); ok {
		if p, ok = f.linkSource(j, src, p); !ok {
			return false
		}
	} else if src, ok := f.takeTrashed(r); !ok {
		return false
	} else if p, ok = f.untrash(j, src, p); !ok {
		return false
	}
	f.mu.Lock()
	f.doneBytes += r.Size
	f.moves++
	f.mu.Unlock()
	f.commits.add(p)
	return true
}

// linkSource links the move source src as p's temp file, if src is exactly
// as recorded and has no other name, and returns p with the source's name
// for its commit to remove.
func (f *folder) linkSource(j job, src moveSource, p pending) (pending, bool) {
	s, sd, err := f.entryAt(src.path, false)
	if err != nil {
		return p, false
	}
	defer sd.close()
	fi, err := s.lstat()
	if err != nil || !fi.Mode().IsRegular() || nlinkOf(fi) != 1 || changedOnDisk(fi, src.local) || ctimeMoved(fi, src.local) {
		return p, false
	}
	if h := f.e.o.hooks.beforeMoveLink; h != nil {
		h(src.path)
	}
	return f.linkTemp(j, s, fi, src.path, p)
}

// linkTemp links s (whose lstat was fi) as p's temp file and returns p
// with from (s's folder-relative path) to remove once the file is in
// place. A link that finds s changed since fi (written to, linked
// elsewhere) is undone.
func (f *folder) linkTemp(j job, s at, fi fs.FileInfo, from string, p pending) (pending, bool) {
	tmpRel := path.Join(path.Dir(j.path), p.tmpBase)
	d, err := f.openParent(j.path, tmpRel, true)
	if err != nil {
		return p, false
	}
	defer d.close()
	if err := unix.Linkat(s.dirfd, s.name, d.fd, p.tmpBase, 0); err != nil {
		return p, false // a temp file left by an earlier try, another file system, no hard links
	}
	after, err := lstatAt(d.fd, p.tmpBase, p.tmp)
	if err != nil || inodeOf(after) != inodeOf(fi) || nlinkOf(after) != 2 || after.Size() != fi.Size() ||
		!after.ModTime().Equal(fi.ModTime()) || uint32(after.Mode().Perm()) != j.win.Mode {
		unix.Unlinkat(d.fd, p.tmpBase, 0)
		return p, false
	}
	p.movedFrom, p.movedIno, p.movedCtime = from, inodeOf(after), index.Ctime(after)
	return p, true
}

// errMovedChanged: a moved file's inode changed between its link and its
// commit.
var errMovedChanged = errors.New("changed while it was being moved here; pulled again")

// moveIntact reports whether p's temp file, linked from p.movedFrom, is
// still the inode it was once linked, unchanged since (its change time).
func moveIntact(p pending) bool {
	fi, err := lstatAt(p.parent.fd, p.tmpBase, p.tmp)
	return err == nil && inodeOf(fi) == p.movedIno && index.Ctime(fi) == p.movedCtime && nlinkOf(fi) == 2 &&
		fi.Size() == p.rec.Size && fi.ModTime().UnixNano() == p.rec.ModTime
}

// moveDone removes the name p.movedFrom (the move source, or the trash
// entry) of the file p just put in place, if it is still that inode.
func (f *folder) moveDone(p pending) {
	t, d, err := f.entryAt(p.movedFrom, false)
	if err != nil {
		return
	}
	defer d.close()
	if fi, err := t.lstat(); err == nil && fi.Mode().IsRegular() && inodeOf(fi) == p.movedIno {
		unix.Unlinkat(t.dirfd, t.name, 0)
	}
}

func nlinkOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
