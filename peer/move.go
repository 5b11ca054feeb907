package peer

import (
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
// pull deletes (a move source) is given the old file's inode by a hard
// link into its temp file, and the deletion then removes only the old name
// (applyDelete): no block is read or written, and the content stays where
// the peer moved it.
//
// The old file must be exactly as recorded (size, mtime, inode and change
// time, so not written since its last scan) and have no other name (a
// user's hard link, a version in the trash), or its content would end up
// shared with a path that lives on; each source serves one new file. Where
// any of that does not hold, or the link fails (another file system under
// the folder, one without hard links), the file is copied as before.

// A rename's deletion can also come first, in an earlier pull pass (the
// scanner writes the tombstones of a path that is gone before it walks the
// new one, index.buryGoneTargets): the old file is then in the trash, and
// its blocks are no longer in the index, so the new file was fetched from
// the peer again. A deleted file's trash entry is now remembered for a
// while (trashTTL) as a move source: a new file with its content, mode and
// mtime takes the entry out of the trash by a rename, if it is still as
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

// untrash renames the trash source src to p's temp file, if it is as it
// was put in the trash.
func (f *folder) untrash(j job, src *trashSource, p pending) bool {
	s, sd, err := f.entryAt(src.rel, false)
	if err != nil {
		return false
	}
	defer sd.close()
	fi, err := s.lstat()
	if err != nil || !sameStat(fi, src.fi) || nlinkOf(fi) != 1 {
		return false
	}
	tmpRel := path.Join(path.Dir(j.path), p.tmpBase)
	d, err := f.openParent(j.path, tmpRel, true)
	if err != nil {
		return false
	}
	defer d.close()
	tmp := at{d.fd, p.tmpBase, p.tmp}
	if err := s.renameNoReplace(tmp); err != nil {
		return false // a temp file left by an earlier try, another file system
	}
	after, err := tmp.lstat()
	if err == nil && inodeOf(after) == inodeOf(fi) && after.Size() == fi.Size() && after.ModTime().Equal(fi.ModTime()) {
		return true
	}
	// Changed between the check and the rename: back into the trash.
	if err := tmp.renameNoReplace(s); err != nil {
		f.e.o.Logger.Warn("could not put a trash entry back", "folder", f.cfg.ID, "entry", src.rel, "now", p.tmp, "err", err)
	}
	return false
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

// movedFile is a move source that a new file took: its inode lives on at
// to, and its own name goes when its deletion is applied.
type movedFile struct {
	to    string
	inode uint64
}

// maxMoves bounds the moves remembered until their deletions are applied;
// past it files are copied.
const maxMoves = 100_000

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
func (f *folder) takeSource(to string, r index.Record) (moveSource, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.sources[r.Content]
	for i, s := range list {
		if s.local.Size != r.Size || s.local.Mode != r.Mode || s.local.ModTime != r.ModTime {
			continue
		}
		if _, taken := f.moved[s.path]; taken || len(f.moved) >= maxMoves {
			continue
		}
		f.sources[r.Content] = append(list[:i:i], list[i+1:]...)
		if f.moved == nil {
			f.moved = map[string]movedFile{}
		}
		f.moved[s.path] = movedFile{to: to, inode: s.local.Inode}
		return s, true
	}
	return moveSource{}, false
}

// dropMove forgets that the file at p was taken as a move source.
func (f *folder) dropMove(p string) {
	f.mu.Lock()
	delete(f.moved, p)
	f.mu.Unlock()
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
// link as its temp file, and queues its commit (the final check and the
// rename into place, as for a pulled file). It reports false, having
// changed nothing, when no source fits; the file is then pulled.
func (f *folder) moveIn(j job, p pending) bool {
	r := j.win
	if r.Kind != index.File || r.Size == 0 || (j.hasLocal && !j.local.Deleted) {
		return false
	}
	if src, ok := f.takeSource(j.path, r); ok {
		if !f.linkSource(j, src, p) {
			f.dropMove(src.path)
			return false
		}
	} else if src, ok := f.takeTrashed(r); !ok || !f.untrash(j, src, p) {
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
// as recorded and has no other name.
func (f *folder) linkSource(j job, src moveSource, p pending) bool {
	s, sd, err := f.entryAt(src.path, false)
	if err != nil {
		return false
	}
	defer sd.close()
	fi, err := s.lstat()
	if err != nil || !fi.Mode().IsRegular() || nlinkOf(fi) != 1 || changedOnDisk(fi, src.local) || ctimeMoved(fi, src.local) {
		return false
	}
	tmpRel := path.Join(path.Dir(j.path), p.tmpBase)
	d, err := f.openParent(j.path, tmpRel, true)
	if err != nil {
		return false
	}
	defer d.close()
	if h := f.e.o.hooks.beforeMoveLink; h != nil {
		h(src.path)
	}
	if err := unix.Linkat(s.dirfd, s.name, d.fd, p.tmpBase, 0); err != nil {
		return false // a temp file left by an earlier try, another file system, no hard links
	}
	// Written to or linked elsewhere just before the link: not taken.
	after, err := lstatAt(d.fd, p.tmpBase, p.tmp)
	if err != nil || inodeOf(after) != inodeOf(fi) || nlinkOf(after) != 2 || changedOnDisk(after, src.local) ||
		uint32(after.Mode().Perm()) != j.win.Mode {
		unix.Unlinkat(d.fd, p.tmpBase, 0)
		return false
	}
	return true
}

// movedAway reports whether the file fi at t, whose deletion j is being
// applied, is a move source that a new file took and whose inode is now
// in place at that file's path: then only this name is removed.
func (f *folder) movedAway(j job, t at, fi fs.FileInfo) bool {
	f.mu.Lock()
	m, ok := f.moved[j.path]
	f.mu.Unlock()
	if !ok {
		return false
	}
	f.dropMove(j.path)
	if !j.hasLocal || j.local.Deleted || inodeOf(fi) != m.inode || nlinkOf(fi) < 2 || changedOnDisk(fi, j.local) {
		return false
	}
	to, d, err := f.entryAt(m.to, false)
	if err != nil {
		return false
	}
	defer d.close()
	there, err := to.lstat()
	return err == nil && there.Mode().IsRegular() && inodeOf(there) == m.inode
}

func nlinkOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
