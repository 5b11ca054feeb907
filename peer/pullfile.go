package peer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
)

// tempName is the temp file for a version of base: the content ID in the
// name lets a restarted pull find and reuse it.
func tempName(base string, content index.Hash) string {
	return index.TempPrefix + tempStem(base) + "-" + content.String()[:16]
}

// tempStem is the part of a temp file's name that comes from the name it
// is for: the name, or if it is longer than 200 bytes, its start and a
// hash of all of it. Cut to 200 bytes only, two long names alike in those
// shared one temp file: the second pull wrote into, and set the mtime of,
// the file the first had just renamed into place.
func tempStem(name string) string {
	if len(name) <= 200 {
		return name
	}
	return shortName(name, 183) + "~" + hashOf([]byte(name)).String()[:16]
}

// applyFile brings the file to version j.win: blocks from local files or
// peers into a temp file beside it, verified, synced, then renamed over the
// target after the final check.
func (f *folder) applyFile(ctx context.Context, j job) error {
	if h := f.e.o.hooks.applyFile; h != nil {
		h(j.path)
	}
	r := j.win
	base := path.Base(j.path)
	dir := nativePath(f.cfg.Root, path.Dir(j.path))
	target := filepath.Join(dir, base)
	mode := fs.FileMode(r.Mode & 0o777)
	mtime := time.Unix(0, r.ModTime)

	// Same content already here: only metadata changed.
	if j.hasLocal && !j.local.Deleted && j.local.Kind == index.File && j.local.Content == r.Content {
		if done, err := f.applyMeta(j, mode, mtime); done || err != nil {
			return err
		}
	}

	tmpBase := tempName(base, r.Content)
	tmpRel := path.Join(path.Dir(j.path), tmpBase)
	tmp := nativePath(f.cfg.Root, tmpRel)
	// The rest (sync, final check, rename, record) happens in batches.
	p := pending{j: j, tmp: tmp, target: target, dir: dir, rec: r, tmpBase: tmpBase, base: base}
	if f.moveIn(j, p) {
		return nil // moved here on a peer: the old file's inode, linked
	}
	// Usually the temp file is new, and the blocks written in it extend it
	// to its size; one left by an earlier try is resumed, or one of
	// another version of the file (adoptTemp).
	f.adoptTemp(j.path, tmpRel, tmp)
	fd, fresh, parent, err := f.createTemp(j.path, tmpRel)
	if err != nil {
		return err
	}
	keep := false // keep the temp file for resume on a transient failure
	defer func() {
		if fd != nil {
			fd.Close()
		}
		if !keep {
			unix.Unlinkat(parent.fd, tmpBase, 0)
		}
		parent.close()
	}()
	resume := false
	if !fresh {
		fi, err := fd.Stat()
		if err != nil {
			return err
		}
		if nlinkOf(fi) > 1 {
			// A move's hard link left by a crash: writing into it would
			// write into the other name's file. Only the name goes.
			fd.Close()
			fd = nil
			unix.Unlinkat(parent.fd, tmpBase, 0)
			parent.close()
			if fd, fresh, parent, err = f.createTemp(j.path, tmpRel); err != nil {
				return err
			}
			if !fresh {
				return fmt.Errorf("%s: a temp file is in the way", tmp)
			}
			fi, err = fd.Stat()
			if err != nil {
				return err
			}
		}
		resume = fi.Size() > 0
		if fi.Size() != r.Size {
			if err := fd.Truncate(r.Size); err != nil {
				return err
			}
		}
	}
	if err := f.fetchBlocks(ctx, fd, r, resume); err != nil {
		// Keep verified blocks for the next try unless the disk is full
		// or did not take them.
		keep = !isDiskFull(err) && !errors.Is(err, errWriteback)
		if keep {
			f.keepTemp(tmp)
		}
		return err
	}
	if err := fd.Chmod(mode); err != nil {
		return err
	}
	if err := futimens(fd, mtime); err != nil {
		return err
	}
	// The temp file stays open for its commit while few enough are.
	if f.commits.held.hold() {
		p.file = fd
	} else if err := fd.Close(); err != nil {
		fd = nil
		return err
	}
	fd = nil
	keep = true
	f.commits.add(p)
	return nil
}

// applyMeta gives the file at j.path j.win's mode and mtime if it still
// holds the local version j.local (the same content as j.win), and records
// it. It works through an O_PATH descriptor opened from the folder's root
// (openUnder: no symlink followed, a parent swapped for one included;
// neither read permission nor a device's open needed), so the chmod cannot
// reach a file outside the folder. done is false when the file is not as
// recorded (a symlink, a FIFO, other content): it is then pulled into a
// temp file like any other version, and the final check keeps what is
// there.
func (f *folder) applyMeta(j job, mode fs.FileMode, mtime time.Time) (done bool, err error) {
	fd, _, parent, err := f.openUnder(j.path, j.path, metaOpen, 0, false)
	if errors.Is(err, ErrUnsafePath) {
		return false, err
	}
	if err != nil {
		return false, nil
	}
	parent.close()
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil || changedOnDisk(fi, j.local) || ctimeMoved(fi, j.local) {
		return false, nil
	}
	if fi.Mode().Perm() == mode && fi.ModTime().Equal(mtime) {
		// Only the version changed (another device merged it with a
		// concurrent one): the file is as scanned and stays untouched, so
		// nothing needs hashing again.
		return true, f.record(j.win, fi)
	}
	if h := f.e.o.hooks.beforeMetaChange; h != nil {
		h(j.path)
	}
	// fchmod refuses an O_PATH descriptor; its /proc link reaches the
	// same inode, whatever happens to the path meanwhile.
	if err := chmodFD(int(fd.Fd()), uint32(mode)); err != nil {
		if err == unix.ENOENT {
			return false, nil // no /proc: the full pull
		}
		return true, &fs.PathError{Op: "chmod", Path: fd.Name(), Err: err}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, procFD(int(fd.Fd())), ts, 0); err != nil {
		return true, &fs.PathError{Op: "utimensat", Path: fd.Name(), Err: err}
	}
	if fi, err = fd.Stat(); err != nil {
		return true, err
	}
	// The new mtime would hide a write of the same size made between the
	// check above and utimensat: the record would match the disk and no
	// scan would look again. So the content is checked after the change;
	// other content is left for the scan, which makes it a new version.
	if !f.holdsContent(fd, fi, j.win) {
		f.requestScan([]string{j.path})
		return true, nil
	}
	if err := f.record(j.win, fi); err != nil {
		return true, err
	}
	f.own.note(j.path, fi)
	return true, nil
}

// holdsContent reports whether the file open (O_PATH) as fd, whose stat
// is fi, holds r's content and was not written to while it was hashed.
// Without a scanner to hash with it trusts the stat, as before.
func (f *folder) holdsContent(fd *os.File, fi fs.FileInfo, r index.Record) bool {
	if f.sc == nil {
		return true
	}
	rfd, err := retryEINTR(func() (int, error) {
		return unix.Open(procFD(int(fd.Fd())), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return false
	}
	file := os.NewFile(uintptr(rfd), fd.Name())
	defer file.Close()
	if fi.Size() != r.Size {
		return false
	}
	n, content, err := f.sc.HashOpen(file, r.Size)
	if err != nil || n != r.Size || content != r.Content {
		return false
	}
	after, err := file.Stat()
	return err == nil && after.Size() == fi.Size() && after.ModTime().Equal(fi.ModTime()) && index.Ctime(after) == index.Ctime(fi)
}

// metaOpen opens a file for applyMeta: O_PATH, which opens a symlink as
// itself (then not as recorded) and touches no data.
const metaOpen = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC

// syncfsMin is the batch size from which syncContents uses syncfs.
const syncfsMin = 32

// pending is a pulled file complete in its temp file, waiting to be made
// durable and renamed into place.
type pending struct {
	j                job
	tmp, target, dir string // absolute paths, for messages and keepTemp
	rec              index.Record
	// parent is the directory holding the temp file, opened by the commit
	// from the folder's root (openParent): the sync, the final check (and
	// its conflict copy or trash), the rename, the removal of the temp
	// file and the stat of the result go through it by name (tmpBase,
	// base), never by a path that a symlink swapped in could redirect.
	parent        parentFD
	tmpBase, base string
	// file is the temp file, held open for the commit (commits.hold), or
	// nil.
	file *os.File
	// movedFrom is, for a move (move.go), the file (folder-relative: a
	// move source or a trash entry) that the commit renames to the
	// target instead of a temp file, as movedStat found it.
	movedFrom string
	movedStat fs.FileInfo
}

// commits batches the end of pulls. For a batch of pulled files it makes
// their content durable (one syncfs for the file system, or one fsync for a
// single file), then for each file runs the final check just before renaming
// it over the target, then syncs each directory once, and only then records
// the new versions, in one index transaction. A record is never written
// before its rename is durable; a crash in between leaves complete temp
// files (resumed) or renamed files without records, which the next scan
// finds with the same content as the global version.
type commits struct {
	f     *folder
	limit int
	// failed reports a file that could not be committed (set per pull pass).
	failed func(j job, err error)

	mu    sync.Mutex // guards items, bytes and timer
	items []pending
	bytes int64       // the size of the files in items
	timer *time.Timer // flushes a batch that is commitAge old

	// held counts the temp files kept open for their commits, in every
	// folder of the engine.
	held *heldFiles

	// fmu serialises flushes. A flush runs outside mu, so that the other
	// workers go on pulling (and queueing) while it syncs.
	fmu sync.Mutex
}

// commitBatch is how many pulled files one commit makes durable and renames.
// Commits run one at a time (the workers go on pulling meanwhile), and each
// costs two syncfs, so it paces a pull of many small files: 10,000 files of
// 1-64 KiB took 4.1-4.3 s end to end with 512, against 4.6-5.5 s with 128
// (two runs each, two daemons on loopback; 2048 was no better).
const commitBatch = 512

// A batch is also committed once its files hold commitBytes, or once it
// is commitAge old, so that pulled files show up at their paths as they
// come: over a slow link, or with big files (photos, videos), a batch of
// 512 took minutes to fill, and nothing of it was in place until the whole
// wave was (a batch ended only when full or when its wave did).
const (
	commitBytes = 256 << 20
	commitAge   = 2 * time.Second
)

func newCommits(f *folder) *commits {
	return &commits{f: f, limit: commitBatch, failed: func(job, error) {}, held: &f.e.held}
}

// heldFiles counts the temp files held open for their commits, at most max.
type heldFiles struct {
	n   atomic.Int64
	max int64
}

// maxHeld bounds the temp files held open for their commits, in all
// folders together: a quarter of the limit on open files, and at most four
// batches' worth (the workers can queue more than one batch while a commit
// runs).
func maxHeld() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int64(min(rl.Cur/4, 4*commitBatch))
}

// hold reports whether a pulled file's temp file may stay open until its
// commit, which then syncs it, drops its pages and closes it through that
// descriptor. Past max the worker closes it itself: the commit then opens
// it again for an fsync, and its pages stay in the cache.
func (h *heldFiles) hold() bool {
	if h.n.Add(1) <= h.max {
		return true
	}
	h.n.Add(-1)
	return false
}

// release closes p's temp file if it is held. With drop, its pages are
// first dropped from the page cache: the commit has made them durable, so
// they are clean. Like the write-behind of large files, this keeps a pull
// of many small files from filling the page cache with data nobody reads
// now (a photo library would evict the user's working set), and the next
// files are written into the pages just freed: on this VM, pages the guest
// has not touched for a while cost about 3 CPU-s per GB to write into,
// against 0.2-0.5 s when reused warm.
func (c *commits) release(p *pending, drop bool) error {
	if p.file == nil {
		return nil
	}
	if drop {
		_ = unix.Fadvise(int(p.file.Fd()), 0, 0, unix.FADV_DONTNEED)
	}
	err := p.file.Close()
	p.file = nil
	c.held.n.Add(-1)
	return err
}

func (c *commits) add(p pending) {
	c.mu.Lock()
	c.items = append(c.items, p)
	c.bytes += p.rec.Size
	var full []pending
	switch {
	case len(c.items) >= c.limit || c.bytes >= commitBytes:
		full, c.items, c.bytes = c.items, nil, 0
	case len(c.items) == 1:
		if c.timer == nil {
			c.timer = time.AfterFunc(commitAge, c.flush)
		} else {
			c.timer.Reset(commitAge)
		}
	}
	c.mu.Unlock()
	if full != nil {
		c.commit(full)
	}
}

// flush commits everything queued, after any commit already running.
func (c *commits) flush() {
	c.mu.Lock()
	items := c.items
	c.items, c.bytes = nil, 0
	c.mu.Unlock()
	c.commit(items)
}

// commit runs one batch (none: only waits for a running one).
func (c *commits) commit(items []pending) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if len(items) == 0 {
		return
	}
	f := c.f
	// Each directory of the batch is opened once, and closed at its end;
	// commits run one at a time, so at most commitBatch are open.
	type opened struct {
		d   parentFD
		err error
	}
	parents := map[string]opened{}
	defer func() {
		for _, o := range parents {
			o.d.close()
		}
	}()
	ready := make([]pending, 0, len(items))
	for _, p := range items {
		o, ok := parents[p.dir]
		if !ok {
			o.d, o.err = f.openParent(p.j.path, p.j.path, false)
			parents[p.dir] = o
		}
		if o.err != nil {
			c.release(&p, false)
			if p.movedFrom == "" {
				f.keepTemp(p.tmp)
			}
			c.failed(p.j, o.err)
			continue
		}
		p.parent = o.d
		ready = append(ready, p)
	}
	// Moves have no temp file to make durable: their content is the file
	// they move, as durable as it was.
	var moves []pending
	items = slices.DeleteFunc(ready, func(p pending) bool {
		if p.movedFrom != "" {
			moves = append(moves, p)
		}
		return p.movedFrom != ""
	})
	// A file that could not be made durable is not kept for a resume: its
	// pages may be clean in the cache and wrong on the disk, and a resume
	// would read them back as verified.
	errs := syncContents(f.rootFD, f.cfg.Root, items)
	ready = items[:0]
	for i, p := range items {
		if errs[i] != nil {
			c.release(&p, false)
			unix.Unlinkat(p.parent.fd, p.tmpBase, 0)
			c.failed(p.j, errs[i])
			continue
		}
		ready = append(ready, p)
	}
	items = append(ready, moves...)
	if len(items) == 0 {
		return
	}
	// What the renames install is on disk before them (index.PutIntents),
	// so that a crash before the records does not make it a local edit.
	// They are dropped once the records are written; after a failure they
	// stay for the scan (which drops them after a full scan).
	intents := make([]index.Record, len(items))
	for i, p := range items {
		intents[i] = p.rec
	}
	intentID, err := f.e.o.Store.PutIntents(f.cfg.ID, intents)
	if err != nil {
		for _, p := range items {
			c.release(&p, false)
			if p.movedFrom == "" {
				f.keepTemp(p.tmp)
			}
			c.failed(p.j, err)
		}
		return
	}
	dirs := map[string]int{} // directory -> an open descriptor of it
	recs := make([]index.Record, 0, len(items))
	done := make([]job, 0, len(items))
	infos := make([]fs.FileInfo, 0, len(items))
	var edited []string // written right after their rename (sameContentStat)
	for _, p := range items {
		if err := c.release(&p, true); err != nil {
			// A close can report a failed write (NFS): not kept either.
			unix.Unlinkat(p.parent.fd, p.tmpBase, 0)
			c.failed(p.j, err)
			continue
		}
		if h := f.e.o.hooks.beforeFinalCheck; h != nil {
			h(p.j.path)
		}
		// What is renamed into place, as it is before: a program that
		// writes the file the moment it appears (before the stat below)
		// must not have its edit taken for the pull's.
		before := p.movedStat
		if p.movedFrom == "" {
			before, _ = index.LstatAt(p.parent.fd, p.tmpBase, p.tmp)
		}
		var placed bool
		var err error
		if p.movedFrom != "" {
			if err := f.moveInto(p); err != nil {
				c.failed(p.j, err) // nothing to remove: no temp file
				continue
			}
			placed = true
		} else {
			placed, err = renameNew(p)
		}
		if err == nil && !placed {
			var keep bool
			keep, err = f.replaceChecked(p.j, at{p.parent.fd, p.tmpBase, p.tmp}, at{p.parent.fd, p.base, p.target})
			if err != nil && keep {
				f.keepTemp(p.tmp)
				c.failed(p.j, err)
				continue
			}
		}
		if err != nil {
			unix.Unlinkat(p.parent.fd, p.tmpBase, 0)
			c.failed(p.j, err)
			continue
		}
		fi, err := index.LstatAt(p.parent.fd, p.base, p.target)
		if err != nil {
			c.failed(p.j, err)
			continue
		}
		if before != nil && !sameContentStat(before, fi) {
			// Written since the rename: the record keeps what was renamed
			// (its change time, older than the edit's, makes the scan
			// hash the file), nothing is noted as this pull's own write,
			// and the file is scanned.
			fi = before
			edited = append(edited, p.j.path)
		}
		p.rec.Inode, p.rec.Ctime = inodeOf(fi), index.Ctime(fi)
		dirs[p.dir] = p.parent.fd
		recs = append(recs, p.rec)
		done = append(done, p.j)
		infos = append(infos, fi)
	}
	if len(dirs) > 1 && len(items) >= syncfsMin {
		// One syncfs makes all the renames durable at once.
		if err := syncRoot(f.rootFD, f.cfg.Root); err != nil {
			for _, j := range done {
				c.failed(j, err)
			}
			return
		}
	} else {
		for _, fd := range dirs {
			syncDirAt(fd)
		}
	}
	if len(recs) > 0 {
		_, err = f.e.o.Store.PutLocal(f.cfg.ID, recs...)
	}
	if err != nil {
		// The intents stay, for the scan of what was renamed.
		for _, j := range done {
			c.failed(j, fmt.Errorf("record: %w", err))
		}
		return
	}
	var files, bytes int64
	for _, j := range done {
		n, b := growth(j)
		files, bytes = files+n, bytes+b
	}
	f.mu.Lock()
	f.committedFiles += files
	f.committedBytes += bytes
	f.mu.Unlock()
	if err := f.e.o.Store.DropIntents(f.cfg.ID, intentID); err != nil {
		f.e.o.Logger.Warn("could not drop the intents of a commit", "folder", f.cfg.ID, "err", err)
	}
	for i, j := range done {
		if !slices.Contains(edited, j.path) {
			f.own.note(j.path, infos[i])
		}
	}
	if len(edited) > 0 {
		f.requestScan(edited)
	}
	paths := make([]string, len(done))
	for i, j := range done {
		paths[i] = j.path
	}
	f.reviveParents(paths...)
}

// sameContentStat reports whether b, a stat of the file a was a stat of
// before a rename, shows the same file unwritten: the same inode, size,
// modification time and mode (a rename moves only the change time).
func sameContentStat(a, b fs.FileInfo) bool {
	return a.Mode() == b.Mode() && inodeOf(a) == inodeOf(b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// renameNew renames p's temp file to its target if the index knows no file
// there, with a rename that fails if anything is there after all
// (RENAME_NOREPLACE). placed is false when p has a local version, or when
// something is at the target, or when such a rename is not possible here
// (file system, seccomp filter): the final check then runs, then rename. The usual pull, a new
// file, so costs one syscall instead of three.
func renameNew(p pending) (placed bool, err error) {
	if p.j.hasLocal && !p.j.local.Deleted {
		return false, nil
	}
	err = renameNoReplace(p.parent.fd, p.tmpBase, p.base)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST), unsupportedRename(err):
		// Something is there, or this file system or a seccomp filter
		// (EPERM) does not allow such a rename: the plain way.
		return false, nil
	}
	return false, &os.LinkError{Op: "rename", Old: p.tmp, New: p.target, Err: err}
}

// renameNoReplace renames oldname to newname in the directory dirfd unless
// newname exists (a variable for tests).
var renameNoReplace = func(dirfd int, oldname, newname string) error {
	return unix.Renameat2(dirfd, oldname, dirfd, newname, unix.RENAME_NOREPLACE)
}

// syncContents makes the temp files' data durable. A small batch is synced
// file by file, in parallel so that the file system can group the journal
// commits; a large batch (many small files) with one syncfs of the folder's
// file system, which measured 15-25 % faster for 10,000 small files but
// also waits for other programs' pending writes on that file system.
//
// It returns each file's error. After a syncfs, each file held open is
// also checked for a failed writeback since it was opened (sync_file_range
// with a wait, which flushes nothing more): the file system's error that
// syncfs reports may have been seen first by another syncfs (another
// folder, another program), and then not be reported here. A file not
// held is opened again for that check: nobody else has seen its error.
func syncContents(rootFD int, root string, items []pending) []error {
	errs := make([]error, len(items))
	if len(items) >= syncfsMin {
		if err := syncRoot(rootFD, root); err != nil {
			for i := range errs {
				errs[i] = err
			}
			return errs
		}
		for i, p := range items {
			if p.file != nil {
				errs[i] = checkWriteback(int(p.file.Fd()), p.tmp)
				continue
			}
			fd, err := p.openTemp(unix.O_RDONLY)
			if err != nil {
				errs[i] = err
				continue
			}
			errs[i] = checkWriteback(fd, p.tmp)
			unix.Close(fd)
		}
		return errs
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, p := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if p.file != nil {
				errs[i] = p.file.Sync()
				return
			}
			fd, err := p.openTemp(unix.O_RDWR)
			if err != nil {
				errs[i] = err
				return
			}
			file := os.NewFile(uintptr(fd), p.tmp)
			errs[i] = file.Sync()
			if cerr := file.Close(); errs[i] == nil {
				errs[i] = cerr
			}
		}()
	}
	wg.Wait()
	return errs
}

// openTemp opens p's temp file (not held) again, by name in its directory.
func (p pending) openTemp(flags int) (int, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(p.parent.fd, p.tmpBase, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: p.tmp, Err: err}
	}
	return fd, nil
}

// checkWriteback reports a failed writeback of the file fd since it was
// opened, after a syncfs: a wait that flushes nothing more. The first call
// that cannot even start a writeback (this file system) reports nothing.
func checkWriteback(fd int, name string) error {
	// Starting a writeback consumes no error; its failure means this file
	// system cannot check this way.
	if syncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE) != nil {
		return nil
	}
	if err := syncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER); err != nil {
		return &fs.PathError{Op: "write back", Path: name, Err: err}
	}
	return nil
}

// syncRoot makes all data of the file system holding root durable. The
// directory synced is opened from rootFD, the pass's descriptor of the
// root, when there is one (a root swapped for a symlink is not followed).
func syncRoot(rootFD int, root string) error {
	var d *os.File
	if rootFD >= 0 {
		fd, err := retryEINTR(func() (int, error) {
			return unix.Openat(rootFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return &fs.PathError{Op: "open", Path: root, Err: err}
		}
		d = os.NewFile(uintptr(fd), root)
	} else {
		var err error
		if d, err = os.Open(root); err != nil {
			return err
		}
	}
	defer d.Close()
	return syncFS(d)
}

// fetchBlocks fills fd with r's blocks using BlockWorkers goroutines. With
// resume, blocks already in the temp file are verified and kept.
func (f *folder) fetchBlocks(ctx context.Context, fd *os.File, r index.Record, resume bool) error {
	if len(r.Blocks) == 1 {
		// Most files are one block: no goroutine and channel for it.
		b := r.Blocks[0]
		if err := f.fetchBlock(ctx, fd, b, resume); err != nil {
			return err
		}
		f.mu.Lock()
		f.doneBytes += b.Size
		f.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan index.Block)
	var wg sync.WaitGroup
	wb := &writeBehind{fd: fd}
	for range min(f.e.o.BlockWorkers, len(r.Blocks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if err := f.fetchBlock(ctx, fd, b, resume); err != nil {
					cancel(err)
					return
				}
				f.mu.Lock()
				f.doneBytes += b.Size
				f.mu.Unlock()
				if err := wb.wrote(b.Size); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	for _, b := range r.Blocks {
		select {
		case work <- b:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(work)
	wg.Wait()
	if err := wb.failed(); err != nil {
		return err // whatever else stopped the workers first
	}
	return context.Cause(ctx)
}

func (f *folder) fetchBlock(ctx context.Context, fd *os.File, b index.Block, resume bool) error {
	if b.Size <= 0 || b.Size > index.MaxBlockSize {
		return fmt.Errorf("block %s: size %d out of range", b.Hash, b.Size)
	}
	if pf := f.pf; pf != nil && !resume {
		if fut := pf.take(ctx, b); fut != nil {
			_, err := fd.WriteAt(fut.buf, b.Offset)
			pf.done(fut)
			return err
		}
	}
	if err := f.e.inflight.Acquire(ctx, b.Size); err != nil {
		return err
	}
	defer f.e.inflight.Release(b.Size)
	buf := getBuf(int(b.Size))
	defer putBuf(buf)
	if resume {
		if _, err := fd.ReadAt(buf, b.Offset); err == nil && hashOf(buf) == b.Hash {
			return nil
		}
	}
	if local, ok := f.e.readLocalBlock(f.cfg.ID, b, true); ok {
		copy(buf, local)
		putBuf(local)
	} else if err := f.fetchRemote(ctx, b, buf); err != nil {
		return err
	}
	_, err := fd.WriteAt(buf, b.Offset)
	return err
}

// fetchRemote tries every connected peer of the folder, least busy first; a
// block that fails verification is discarded and asked of the next peer.
func (f *folder) fetchRemote(ctx context.Context, b index.Block, buf []byte) error {
	var errs []error
	for _, c := range f.e.sources(f.cfg.ID) {
		err := c.fetchBlock(ctx, f.cfg.ID, b, buf)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return fmt.Errorf("block %s: %w", b.Hash, ErrNoSource)
	}
	return fmt.Errorf("block %s: %w", b.Hash, errors.Join(errs...))
}

// hasTemp reports whether a temp file of j's version is kept (keepTemp,
// foundTemp) for its pull to resume.
func (f *folder) hasTemp(j job) bool {
	f.mu.Lock()
	n := len(f.temps)
	f.mu.Unlock()
	if n == 0 {
		return false
	}
	tmp := nativePath(f.cfg.Root, path.Join(path.Dir(j.path), tempName(path.Base(j.path), j.win.Content)))
	f.mu.Lock()
	_, ok := f.temps[tmp]
	f.mu.Unlock()
	return ok
}

// adoptTemp renames to tmp (folder-relative tmpRel), the temp file of a
// pull of p, a temp file kept for another version of p, if there is one
// and nothing is at tmp: the pull resumes it, and takes from it every
// block still at its offset. A big file edited in place while it was
// pulled (a disk image, a database) then costs its changed blocks, not the
// whole file again (a new temp file was begun and the kept one removed).
func (f *folder) adoptTemp(p, tmpRel, tmp string) {
	// Temp names of p differ only in their last 16 characters (the
	// content ID's start: tempName).
	prefix := tmp[:len(tmp)-16]
	var old string
	f.mu.Lock()
	for k := range f.temps {
		if k != tmp && len(k) == len(tmp) && k[:len(prefix)] == prefix && isHex(k[len(prefix):]) {
			old = k
			break
		}
	}
	f.mu.Unlock()
	if old == "" {
		return
	}
	d, err := f.openParent(p, tmpRel, false)
	if err != nil {
		return
	}
	defer d.close()
	// Only a plain file of syncd's (never a symlink's temp, whose name,
	// STEM.link, can look alike; a hard link is left to applyFile).
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, filepath.Base(old), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	if unix.Renameat2(d.fd, filepath.Base(old), d.fd, filepath.Base(tmp), unix.RENAME_NOREPLACE) == nil {
		f.mu.Lock()
		delete(f.temps, old)
		f.mu.Unlock()
	}
}

// isHex reports whether s is lowercase hexadecimal, as a content ID's
// start in a temp name is (tempName).
func isHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// keepTemp remembers a temp file kept for a later try of the same version.
func (f *folder) keepTemp(tmp string) {
	f.mu.Lock()
	f.temps[tmp] = f.pass
	f.mu.Unlock()
}

// dropTemps runs after a pull pass and removes the temp files that the
// pass did not keep: the versions they were for are applied or no longer
// wanted (every failed path is tried again in the next pass), and a temp
// file nobody resumes would stay forever.
// foundTemp takes note of a temp file that a scan walked past (folder path
// rel) and that is not kept already: one left behind, say, when its
// directory was renamed while it was kept for a resume. Like a kept one,
// it goes after the next pass unless that pass uses it.
func (f *folder) foundTemp(rel string) {
	p := nativePath(f.cfg.Root, rel)
	f.mu.Lock()
	if _, ok := f.temps[p]; !ok {
		f.temps[p] = f.pass
	}
	f.mu.Unlock()
}

func (f *folder) dropTemps() {
	var drop []string
	f.mu.Lock()
	for tmp, pass := range f.temps {
		if pass < f.pass {
			drop = append(drop, tmp)
			delete(f.temps, tmp)
		}
	}
	f.mu.Unlock()
	if len(drop) == 0 {
		return
	}
	root, err := openRoot(f.cfg.Root)
	if err != nil {
		return
	}
	defer unix.Close(root)
	for _, tmp := range drop {
		removeUnder(root, f.cfg.Root, tmp)
	}
}

// removeUnder removes the file name (absolute, under root) through its
// directory opened from rootFD, like a pull's temp file (openParentAt): a
// parent swapped for a symlink leaves it in place rather than removing a
// file of the same name where the link leads.
func removeUnder(rootFD int, root, name string) {
	rel, err := filepath.Rel(root, name)
	if err != nil || !filepath.IsLocal(rel) {
		return
	}
	rel = filepath.ToSlash(rel)
	d, err := openParentAt(rootFD, root, rel, rel, 0)
	if err != nil {
		return
	}
	unix.Unlinkat(d.fd, path.Base(rel), 0)
	d.close()
}

// clearTempsUnder removes syncd's own temp files inside the directory t
// (about to be moved aside), so that none is carried along where no later
// pass would find it. It walks through descriptors, from t's directory
// down, never following a symlink.
func (f *folder) clearTempsUnder(t at) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(t.dirfd, t.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return // not a directory (or unreadable): nothing to clear
	}
	dir := os.NewFile(uintptr(fd), t.full)
	defer dir.Close()
	entries, _ := dir.ReadDir(-1)
	for _, e := range entries {
		sub := at{fd, e.Name(), filepath.Join(t.full, e.Name())}
		switch {
		case e.IsDir():
			f.clearTempsUnder(sub)
		case index.IsTemp(e):
			unix.Unlinkat(fd, e.Name(), 0)
			f.mu.Lock()
			delete(f.temps, sub.full)
			f.mu.Unlock()
		}
	}
}

// findTemps adopts the temp files left by an earlier run (a crash or a
// stop during a pull), so that they are resumed or, if no longer wanted,
// removed by dropTemps.
func (f *folder) findTemps() {
	root := f.cfg.Root
	filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == filepath.Join(root, ".syncd") {
			return filepath.SkipDir
		}
		if index.IsTemp(de) {
			f.keepTemp(p)
		}
		return nil
	})
}
