// Package caseless mounts a case-insensitive, case-preserving view of a
// directory through FUSE, so tests can see how syncd behaves on a file
// system like vfat, exFAT or ext4 with casefold, which the test machines'
// kernels may not have.
//
// The view is go-fuse's loopback node with every operation that names
// something resolving the name against the backing directory first: the
// entry spelled exactly so if there is one, else the entry equal to it
// under Unicode simple case folding, as strings.EqualFold has it (bytes
// that are not UTF-8 only equal themselves), the lowest such name in
// byte order should the backing directory hold several. In detail:
//
//   - Lookup, open, stat, unlink, rmdir and the like find an entry under
//     any case; the directories of a path too (Photos/x.jpg is
//     photos/x.jpg in the backing directory, also when created).
//   - readdir lists the names as stored.
//   - Creating (creat, mkdir, mknod, symlink, link) a name that matches
//     an entry under case folding does not add a second entry: creat
//     with O_EXCL, mkdir, symlink, mknod and link fail with EEXIST;
//     creat without O_EXCL opens the entry that is there.
//   - rename(x, "A.txt") while "a.txt" exists replaces a.txt and keeps
//     the stored name "a.txt", as vfat and ext4 casefold do (they reuse
//     the directory entry); RENAME_NOREPLACE fails with EEXIST;
//     RENAME_EXCHANGE exchanges x with a.txt.
//   - rename("a.txt", "A.txt") of a file (not a directory, see below)
//     changes the stored name to "A.txt", as on macOS or Windows. Linux's
//     own case-insensitive file systems cannot do that: there both names
//     are the same inode, and the kernel's rename returns success
//     without doing anything when source and target are one inode. With
//     RENAME_NOREPLACE it fails with EEXIST (the kernel sees a target
//     and refuses before asking the file system).
//
// Each spelling of a non-directory other than its stored name is a
// kernel inode of its own (with the st_dev and st_ino of the stored
// spelling, so os.SameFile holds): that is what lets rename("a.txt",
// "A.txt") reach the file system. The page cache is per kernel inode;
// as it is dropped on every open, this only matters for a file open (or
// mapped) under two spellings at once while it is written.
//
// A directory is one kernel inode under all spellings, so that inotify
// watches see the changes made under any spelling of its path. The
// price: rename("photos", "Photos") of a directory succeeds and does
// nothing, as it does on ext4 casefold and vfat.
//
// inotify works on the mount for changes made through it (the names in
// the events are spelled as the caller spelled them); changes made
// directly in the backing directory give no events on the mount.
//
// Entry, attribute and negative-entry timeouts are zero, so the kernel
// asks again on every path walk and never hides a change made in the
// backing directory. Name changes made through the mount are serialized
// (the check for an equal name and the change are one step); those made
// directly in the backing directory are not checked for collisions.
// Listings of directories are cached for looking up names not spelled
// as stored, and read again when the directory's ctime or mtime (or
// inode, size or link count) changes; a kernel without fine-grained
// timestamps (multigrain, Linux 6.13) might hide a name added directly
// in the backing directory within a clock tick of a lookup there.
package caseless

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Mount mounts a case-insensitive, case-preserving view of the directory
// backing at mountpoint (both must be existing directories) and returns
// a function that unmounts it. The function may be called more than
// once; it detaches the mount lazily (MNT_DETACH) where it is busy, in
// which case the server keeps serving what is still open until it is
// closed.
//
// Mount needs to be root (it mounts directly, without fusermount) or
// have fusermount3 or fusermount installed.
func Mount(backing, mountpoint string) (unmount func() error, err error) {
	return MountWith(backing, mountpoint, Options{})
}

// Options change the view.
type Options struct {
	// VfatNames makes the view treat names as Linux's vfat and exFAT
	// drivers do: a name with one of the characters " * : < > ? \ | or a
	// control character cannot be created (EINVAL) and is never found
	// (ENOENT), and a name's trailing dots and spaces are dropped (a file
	// created as "x." is stored as "x", and "x." finds it).
	VfatNames bool
}

// MountWith is Mount with options.
func MountWith(backing, mountpoint string, o Options) (unmount func() error, err error) {
	backing, err = filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	mountpoint, err = filepath.Abs(mountpoint)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: backing, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, &os.PathError{Op: "mount", Path: backing, Err: syscall.ENOTDIR}
	}

	m := &mounted{mountpoint: mountpoint}
	// Directly first. go-fuse opens /dev/fuse without O_CLOEXEC then:
	// hold off fork and exec until it is marked, so that no child
	// inherits it.
	syscall.ForkLock.RLock()
	m.server, err = mountOnce(backing, mountpoint, uint64(st.Dev), true, o)
	if err == nil {
		cloexecFuseFDs()
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		direct := err
		m.server, err = mountOnce(backing, mountpoint, uint64(st.Dev), false, o)
		if err != nil {
			return nil, fmt.Errorf("caseless: mount %s on %s: directly: %v; with fusermount: %v", backing, mountpoint, direct, err)
		}
		m.fusermount = true
	}
	return m.unmount, nil
}

// MountForTest mounts a case-insensitive view of a new empty directory
// (backing) at another (mnt), both in t.TempDir(), and unmounts it in
// t.Cleanup, before the directories are removed. Where it cannot mount
// it skips t, or fails it when the environment has CI=true.
func MountForTest(t testing.TB) (mnt, backing string) {
	t.Helper()
	return MountForTestWith(t, Options{})
}

// MountForTestWith is MountForTest with options.
func MountForTestWith(t testing.TB, o Options) (mnt, backing string) {
	t.Helper()
	backing = t.TempDir()
	mnt = t.TempDir()
	unmount, err := MountWith(backing, mnt, o)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot mount a case-insensitive file system: %v", err)
		}
		t.Skipf("cannot mount a case-insensitive file system (CI=true makes this fail): %v", err)
	}
	// Registered after the t.TempDir calls, so it runs before they are
	// removed.
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt, backing
}

type mounted struct {
	mountpoint string
	server     *fuse.Server
	fusermount bool

	once sync.Once
	err  error
}

func (m *mounted) unmount() error {
	m.once.Do(func() { m.err = m.doUnmount() })
	return m.err
}

func (m *mounted) doUnmount() error {
	if m.fusermount {
		if err := m.server.Unmount(); err == nil {
			return nil
		}
		// Busy: detach lazily.
		for _, bin := range []string{"fusermount3", "fusermount"} {
			if path, err := exec.LookPath(bin); err == nil {
				out, err := exec.Command(path, "-u", "-z", m.mountpoint).CombinedOutput()
				if err != nil {
					return fmt.Errorf("caseless: %s -u -z %s: %v: %s", bin, m.mountpoint, err, out)
				}
				return nil
			}
		}
		return fmt.Errorf("caseless: cannot unmount %s", m.mountpoint)
	}
	err := unix.Unmount(m.mountpoint, 0)
	switch err {
	case nil:
		// The kernel ends the connection; the serve loop returns.
		m.server.Wait()
		return nil
	case unix.EBUSY:
		// Something still has a file, a directory or its working
		// directory in it: take the mount out of the tree now, and
		// let the connection end once the last of that is closed.
		if err := unix.Unmount(m.mountpoint, unix.MNT_DETACH); err != nil {
			return &os.PathError{Op: "umount2(MNT_DETACH)", Path: m.mountpoint, Err: err}
		}
		return nil
	case unix.EINVAL:
		// Not mounted (any more).
		return nil
	default:
		return &os.PathError{Op: "umount", Path: m.mountpoint, Err: err}
	}
}

func mountOnce(backing, mountpoint string, dev uint64, direct bool, o Options) (*fuse.Server, error) {
	r := &fsRoot{
		vfat:     o.VfatNames,
		backing:  backing,
		dev:      dev,
		variants: make(map[variantKey]uint64),
		nextGen:  1 << 62,
		dirs:     make(map[string]*listing),
	}
	root := &node{r: r, root: true}
	r.loop = &fs.LoopbackRoot{Path: backing, Dev: dev, RootNode: root}
	root.RootData = r.loop

	zero := time.Duration(0)
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:            backing,
			Name:              "caseless",
			DirectMountStrict: direct,
			// Every entry is looked up again anyway (EntryTimeout 0).
			DisableReadDirPlus: true,
		},
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	}
	return fs.Mount(mountpoint, root, opts)
}

// cloexecFuseFDs sets FD_CLOEXEC on this process's descriptors of
// /dev/fuse (go-fuse opens it without, when it mounts directly).
func cloexecFuseFDs() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "/dev/fuse" {
			syscall.CloseOnExec(fd)
		}
	}
}

// fsRoot is what the nodes of one mount share.
type fsRoot struct {
	vfat    bool // Options.VfatNames
	backing string
	dev     uint64
	loop    *fs.LoopbackRoot

	// ns serializes the operations that add or remove names, so that
	// the check for a name equal under case folding and the change are
	// one step.
	ns sync.Mutex

	// dirs caches listings of directories, by path, for the lookups of
	// names not spelled as stored (which would read the directory each
	// time otherwise).
	cmu  sync.Mutex
	dirs map[string]*listing

	// variants gives each spelling of a non-directory other than its
	// stored name its own StableAttr.Gen, hence its own kernel inode.
	mu       sync.Mutex
	variants map[variantKey]uint64
	nextGen  uint64
}

type variantKey struct {
	ino, gen uint64
	name     string
}

// ino is the inode number the view gives st, as go-fuse's loopback does.
func (r *fsRoot) ino(st *syscall.Stat_t) uint64 {
	swapped := (uint64(st.Dev) << 32) | (uint64(st.Dev) >> 32)
	swappedRootDev := (r.dev << 32) | (r.dev >> 32)
	return (swapped ^ swappedRootDev) ^ uint64(st.Ino)
}

func (r *fsRoot) variantGen(ino, gen uint64, name string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := variantKey{ino, gen, name}
	g, ok := r.variants[k]
	if !ok {
		g = r.nextGen
		r.nextGen++
		r.variants[k] = g
	}
	return g
}

// node is a file, directory or other entry of the view. Its path in the
// backing directory is found again for every operation, from the names
// in go-fuse's tree (which are the spellings the kernel used), and
// checked to still be the same file.
type node struct {
	fs.LoopbackNode

	r    *fsRoot
	root bool

	// ino and gen identify the backing file: r.ino(st) and its birth
	// time (1 where there is none).
	ino, gen uint64

	// last is the path n was found at last.
	last atomic.Pointer[string]
}

var (
	_ fs.InodeEmbedder      = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeReaddirer      = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeGetxattrer     = (*node)(nil)
	_ fs.NodeSetxattrer     = (*node)(nil)
	_ fs.NodeRemovexattrer  = (*node)(nil)
	_ fs.NodeListxattrer    = (*node)(nil)
	// CopyFileRange is the loopback's own: it works on the open files.
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// path returns n's path in the backing directory and its status: the
// path it had last if that is still n's file, else the path of its
// parent (as go-fuse's tree has it, under the name the kernel last used)
// joined with the name that resolves to there. ENOENT where that is not
// n's file (any more).
func (n *node) path() (string, *syscall.Stat_t, syscall.Errno) {
	if n.root {
		st, _, err := statx(n.r.backing, 0)
		if err != nil {
			return "", nil, fs.ToErrno(err)
		}
		return n.r.backing, &st, 0
	}
	if h := n.last.Load(); h != nil {
		if st, gen, err := statx(*h, unix.AT_SYMLINK_NOFOLLOW); err == nil && n.is(&st, gen) {
			return *h, &st, 0
		}
	}
	name, parent := n.Parent()
	if parent == nil {
		// In no directory (any more, or made with O_TMPFILE).
		return "", nil, syscall.ENOENT
	}
	pn, ok := parent.Operations().(*node)
	if !ok {
		return "", nil, syscall.ENOENT
	}
	dir, _, errno := pn.path()
	if errno != 0 {
		return "", nil, errno
	}
	stored, st, gen, errno := n.r.resolve(dir, name)
	if errno != 0 {
		return "", nil, errno
	}
	if !n.is(&st, gen) {
		// Gone, and something else has its name now.
		return "", nil, syscall.ENOENT
	}
	p := filepath.Join(dir, stored)
	n.last.Store(&p)
	return p, &st, 0
}

// is reports whether st (with birth time gen) is n's file.
func (n *node) is(st *syscall.Stat_t, gen uint64) bool {
	return n.r.ino(st) == n.ino && gen == n.gen
}

// resolve returns the name of the entry of dir that name refers to: name
// itself where that exists, else the lowest in byte order of the names
// equal to it under case folding; and its status. ENOENT where there is
// none.
func (r *fsRoot) resolve(dir, name string) (string, syscall.Stat_t, uint64, syscall.Errno) {
	var st syscall.Stat_t
	name, errno := r.vfatName(name) // the kernel's name for a node may be one not stored so
	if errno != 0 {
		return "", st, 0, syscall.ENOENT
	}
	st, gen, err := statx(filepath.Join(dir, name), unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		return name, st, gen, 0
	}
	if err != unix.ENOENT {
		return "", st, 0, fs.ToErrno(err)
	}
	for retry := false; ; retry = true {
		other, errno := r.foldMatch(dir, name, retry)
		if errno != 0 {
			return "", st, 0, errno
		}
		if other == "" {
			return "", st, 0, syscall.ENOENT
		}
		st, gen, err = statx(filepath.Join(dir, other), unix.AT_SYMLINK_NOFOLLOW)
		if err == nil {
			return other, st, gen, 0
		}
		if err != unix.ENOENT || retry {
			return "", st, 0, fs.ToErrno(err)
		}
	}
}

// existing returns the name of the entry of dir that name refers to (as
// resolve), or "" where there is none.
func (r *fsRoot) existing(dir, name string) (string, syscall.Errno) {
	stored, _, _, errno := r.resolve(dir, name)
	if errno == syscall.ENOENT {
		return "", 0
	}
	return stored, errno
}

// foldMatch returns the lowest name in dir equal to name under case
// folding, or "". It reads the directory where its cached listing is
// not for the directory as it is now (or fresh is set).
func (r *fsRoot) foldMatch(dir, name string, fresh bool) (string, syscall.Errno) {
	r.cmu.Lock()
	defer r.cmu.Unlock()
	key, err := dirKeyOf(dir)
	if err != nil {
		return "", fs.ToErrno(err)
	}
	d := r.dirs[dir]
	if d == nil || d.key != key || fresh {
		f, err := os.Open(dir)
		if err != nil {
			return "", fs.ToErrno(err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return "", fs.ToErrno(err)
		}
		d = &listing{key: key, fold: make(map[string][]string, len(names))}
		for _, e := range names {
			d.add(e)
		}
		r.dirs[dir] = d
	}
	if c := d.fold[foldKey(name)]; len(c) > 0 {
		return c[0], 0
	}
	return "", 0
}

// changed brings the cached listing of dir, where there is one and it
// was for the directory as it was before (its key then), up to date
// with the names an operation of the view added to it and removed from
// it (which may be "").
func (r *fsRoot) changed(dir string, before dirKey, added, removed string) {
	r.cmu.Lock()
	defer r.cmu.Unlock()
	d := r.dirs[dir]
	if d == nil {
		return
	}
	after, err := dirKeyOf(dir)
	if err != nil || d.key != before {
		delete(r.dirs, dir)
		return
	}
	d.key = after
	if removed != "" {
		d.remove(removed)
	}
	if added != "" {
		d.add(added)
	}
}

// listing is the names of a directory by foldKey (sorted; mostly one).
type listing struct {
	key  dirKey
	fold map[string][]string
}

func (d *listing) add(name string) {
	k := foldKey(name)
	c := d.fold[k]
	if i, found := slices.BinarySearch(c, name); !found {
		d.fold[k] = slices.Insert(c, i, name)
	}
}

func (d *listing) remove(name string) {
	k := foldKey(name)
	c := d.fold[k]
	if i, found := slices.BinarySearch(c, name); found {
		c = slices.Delete(c, i, i+1)
		if len(c) == 0 {
			delete(d.fold, k)
		} else {
			d.fold[k] = c
		}
	}
}

// dirKey tells a state of a directory from the next: any entry added,
// removed or renamed in it changes its ctime and mtime.
type dirKey struct {
	ino, size    uint64
	nlink        uint32
	mtime, ctime unix.StatxTimestamp
}

func dirKeyOf(dir string) (dirKey, error) {
	var x unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &x); err != nil {
		return dirKey{}, err
	}
	return dirKey{ino: x.Ino, size: x.Size, nlink: x.Nlink, mtime: x.Mtime, ctime: x.Ctime}, nil
}

// foldKey maps names equal under Unicode simple case folding (as
// strings.EqualFold has it) to the same string, and others to different
// ones: each rune becomes the least of its case folding orbit. Bytes
// that are not UTF-8 stay themselves (behind a 0xff, which UTF-8 never
// has), so that they only equal themselves.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i, w := 0, 0; i < len(s); i += w {
		c, size := utf8.DecodeRuneInString(s[i:])
		w = size
		if c == utf8.RuneError && size <= 1 {
			b.WriteByte(0xff)
			b.WriteByte(s[i])
			continue
		}
		least := c
		for f := unicode.SimpleFold(c); f != c; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// child returns the Inode for the entry stored of n (its path dir), as
// the kernel names it (name): the one for the stored name, or one of its
// own for a non-directory under another spelling.
func (n *node) child(ctx context.Context, name, stored string, st *syscall.Stat_t, gen uint64) *fs.Inode {
	ino := n.r.ino(st)
	id := fs.StableAttr{Mode: uint32(st.Mode) & syscall.S_IFMT, Ino: ino, Gen: gen}
	if name != stored && id.Mode != syscall.S_IFDIR {
		id.Gen = n.r.variantGen(ino, gen, name)
	}
	ch := &node{r: n.r, ino: ino, gen: gen}
	ch.RootData = n.r.loop
	return n.NewInode(ctx, ch, id)
}

// added returns the Inode for what an operation just made at p (named
// name in n), filling out.
func (n *node) added(ctx context.Context, p, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	st, gen, err := statx(p, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	return n.child(ctx, name, name, &st, gen), 0
}

// preserveOwner gives path the caller's uid and gid, as the loopback does.
func preserveOwner(ctx context.Context, path string) {
	if os.Getuid() != 0 {
		return
	}
	if caller, ok := fuse.FromContext(ctx); ok {
		_ = syscall.Lchown(path, int(caller.Uid), int(caller.Gid))
	}
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	name, errno := n.r.vfatName(name)
	if errno != 0 {
		return nil, syscall.ENOENT
	}
	dir, _, errno := n.path()
	if errno != 0 {
		return nil, errno
	}
	stored, st, gen, errno := n.r.resolve(dir, name)
	if errno != 0 {
		return nil, errno
	}
	out.Attr.FromStat(&st)
	return n.child(ctx, name, stored, &st, gen), 0
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if f != nil {
		if fga, ok := f.(fs.FileGetattrer); ok {
			return fga.Getattr(ctx, out)
		}
	}
	_, st, errno := n.path()
	if errno != 0 {
		return errno
	}
	out.FromStat(st)
	return 0
}

func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if f != nil {
		if fsx, ok := f.(fs.FileStatxer); ok {
			return fsx.Statx(ctx, flags, mask, out)
		}
	}
	p, _, errno := n.path()
	if errno != 0 {
		return errno
	}
	fl := int(flags) | unix.AT_SYMLINK_NOFOLLOW
	if n.root {
		fl = int(flags)
	}
	var x unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, fl, int(mask), &x); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatx(&x)
	return 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if fsa, ok := f.(fs.FileSetattrer); ok {
		// By descriptor (the open files are the loopback's).
		return fsa.Setattr(ctx, in, out)
	}
	p, _, errno := n.path()
	if errno != 0 {
		return errno
	}
	if m, ok := in.GetMode(); ok {
		if err := syscall.Chmod(p, m); err != nil {
			return fs.ToErrno(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		suid, sgid := -1, -1
		if uok {
			suid = int(uid)
		}
		if gok {
			sgid = int(gid)
		}
		if err := unix.Fchownat(unix.AT_FDCWD, p, suid, sgid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fs.ToErrno(err)
		}
	}
	// Truncate before setting times, so an explicit mtime is not
	// clobbered by the truncate.
	if sz, ok := in.GetSize(); ok {
		if err := syscall.Truncate(p, int64(sz)); err != nil {
			return fs.ToErrno(err)
		}
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		var err error
		if aok {
			if ts[0], err = unix.TimeToTimespec(atime); err != nil {
				return fs.ToErrno(err)
			}
		}
		if mok {
			if ts[1], err = unix.TimeToTimespec(mtime); err != nil {
				return fs.ToErrno(err)
			}
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fs.ToErrno(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Statfs(n.r.backing, &s); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&s)
	return 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	flags &^= syscall.O_APPEND | fuse.FMODE_EXEC
	p, _, errno := n.path()
	if errno != 0 {
		return nil, 0, errno
	}
	// O_NOFOLLOW: the kernel opens what it found, never a symlink.
	fd, err := syscall.Open(p, int(flags)|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	return fs.NewLoopbackFile(fd), 0, 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	p, _, errno := n.path()
	if errno != 0 {
		return nil, 0, errno
	}
	ds, errno := fs.NewLoopbackDirStream(p)
	if errno != 0 {
		return nil, 0, errno
	}
	return ds, 0, 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	p, _, errno := n.path()
	if errno != 0 {
		return nil, errno
	}
	return fs.NewLoopbackDirStream(p)
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	p, _, errno := n.path()
	if errno != 0 {
		return nil, errno
	}
	for l := 256; ; l *= 2 {
		buf := make([]byte, l)
		sz, err := syscall.Readlink(p, buf)
		if err != nil {
			return nil, fs.ToErrno(err)
		}
		if sz < len(buf) {
			return buf[:sz], 0
		}
	}
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	p, _, errno := n.path()
	if errno != 0 {
		return 0, errno
	}
	sz, err := unix.Lgetxattr(p, attr, dest)
	return uint32(sz), fs.ToErrno(err)
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	p, _, errno := n.path()
	if errno != 0 {
		return errno
	}
	return fs.ToErrno(unix.Lsetxattr(p, attr, data, int(flags)))
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	p, _, errno := n.path()
	if errno != 0 {
		return errno
	}
	return fs.ToErrno(unix.Lremovexattr(p, attr))
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	p, _, errno := n.path()
	if errno != 0 {
		return 0, errno
	}
	sz, err := unix.Llistxattr(p, dest)
	return uint32(sz), fs.ToErrno(err)
}

// Create creates name in n, or opens the entry name refers to where
// there is one (EEXIST with O_EXCL). The kernel looks the name up first
// and only creates where that found nothing, so the latter is a race
// with another creator.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	name, errno := n.r.vfatName(name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	n.r.ns.Lock()
	defer n.r.ns.Unlock()
	dir, _, errno := n.path()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	stored, errno := n.r.existing(dir, name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	target := name
	if stored != "" {
		if flags&syscall.O_EXCL != 0 {
			return nil, nil, 0, syscall.EEXIST
		}
		target = stored
	}
	p := filepath.Join(dir, target)
	before := keyOf(dir)
	flags &^= syscall.O_APPEND
	fd, err := syscall.Open(p, int(flags)|syscall.O_CREAT|syscall.O_CLOEXEC, mode)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	if stored == "" {
		n.r.changed(dir, before, name, "")
		preserveOwner(ctx, p)
	}
	st, gen, err := fstatx(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, nil, 0, fs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	return n.child(ctx, name, target, &st, gen), fs.NewLoopbackFile(fd), 0, 0
}

func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	dir, _, errno := n.path()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	flags &^= syscall.O_APPEND
	fd, err := syscall.Open(dir, int(flags)|unix.O_TMPFILE|syscall.O_CLOEXEC, mode)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	st, gen, err := fstatx(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, nil, 0, fs.ToErrno(err)
	}
	ino := n.r.ino(&st)
	ch := &node{r: n.r, ino: ino, gen: gen}
	ch.RootData = n.r.loop
	out.Attr.FromStat(&st)
	return n.NewInode(ctx, ch, fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino, Gen: gen}), fs.NewLoopbackFile(fd), 0, 0
}

// creating runs make to create name in n, where nothing in n has that
// name under case folding (EEXIST otherwise), and returns the Inode
// for it.
func (n *node) creating(ctx context.Context, name string, out *fuse.EntryOut, make func(p string) error) (*fs.Inode, syscall.Errno) {
	name, errno := n.r.vfatName(name)
	if errno != 0 {
		return nil, errno
	}
	n.r.ns.Lock()
	defer n.r.ns.Unlock()
	dir, _, errno := n.path()
	if errno != 0 {
		return nil, errno
	}
	stored, errno := n.r.existing(dir, name)
	if errno != 0 {
		return nil, errno
	}
	if stored != "" {
		return nil, syscall.EEXIST
	}
	p := filepath.Join(dir, name)
	before := keyOf(dir)
	if err := make(p); err != nil {
		return nil, fs.ToErrno(err)
	}
	n.r.changed(dir, before, name, "")
	return n.added(ctx, p, name, out)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.creating(ctx, name, out, func(p string) error {
		if err := syscall.Mkdir(p, mode); err != nil {
			return err
		}
		preserveOwner(ctx, p)
		return nil
	})
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.creating(ctx, name, out, func(p string) error {
		if err := syscall.Mknod(p, mode, int(rdev)); err != nil {
			return err
		}
		preserveOwner(ctx, p)
		return nil
	})
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.creating(ctx, name, out, func(p string) error {
		if err := syscall.Symlink(target, p); err != nil {
			return err
		}
		preserveOwner(ctx, p)
		return nil
	})
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, ok := target.(*node)
	if !ok || t.r != n.r {
		return nil, syscall.EXDEV
	}
	return n.creating(ctx, name, out, func(p string) error {
		tp, _, errno := t.path()
		if errno != 0 {
			// Also a file made with O_TMPFILE, which is in no
			// directory: LINK does not say which open file it is.
			return errno
		}
		return syscall.Link(tp, p)
	})
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.removing(name, syscall.Unlink)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.removing(name, syscall.Rmdir)
}

func (n *node) removing(name string, remove func(string) error) syscall.Errno {
	name, errno := n.r.vfatName(name)
	if errno != 0 {
		return syscall.ENOENT
	}
	n.r.ns.Lock()
	defer n.r.ns.Unlock()
	dir, stored, errno := n.entry(name)
	if errno != 0 {
		return errno
	}
	before := keyOf(dir)
	if err := remove(filepath.Join(dir, stored)); err != nil {
		return fs.ToErrno(err)
	}
	n.r.changed(dir, before, "", stored)
	return 0
}

// Rename renames name in n to newName in newParent. Where newName
// refers to an entry already (under case folding), that entry is
// replaced and keeps its stored name, unless it is name's own entry:
// then the stored name changes to newName.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.r != n.r {
		return syscall.EXDEV
	}
	name, errno := n.r.vfatName(name)
	if errno != 0 {
		return syscall.ENOENT
	}
	if newName, errno = n.r.vfatName(newName); errno != 0 {
		return errno
	}
	n.r.ns.Lock()
	defer n.r.ns.Unlock()
	odir, oldStored, errno := n.entry(name)
	if errno != 0 {
		return errno
	}
	ndir, _, errno := np.path()
	if errno != 0 {
		return errno
	}
	newStored, errno := n.r.existing(ndir, newName)
	if errno != 0 {
		return errno
	}
	target := newName
	if newStored != "" {
		if odir == ndir && newStored == oldStored {
			// newName is another spelling of name's own entry.
			switch {
			case flags&unix.RENAME_NOREPLACE != 0:
				return syscall.EEXIST
			case flags&unix.RENAME_EXCHANGE != 0, newName == oldStored:
				return 0
			}
			flags = 0
		} else {
			target = newStored
		}
	}
	oldp, newp := filepath.Join(odir, oldStored), filepath.Join(ndir, target)

	// The file may be known under more spellings than name, each a node
	// of n's: they move with it. (With RENAME_EXCHANGE, those of the
	// file at newp too.)
	moved, swapped := n.spellings(oldp), []*node(nil)
	if flags&unix.RENAME_EXCHANGE != 0 {
		swapped = np.spellings(newp)
	}
	obefore, nbefore := keyOf(odir), keyOf(ndir)
	var err error
	if flags == 0 {
		err = syscall.Rename(oldp, newp)
	} else {
		err = unix.Renameat2(unix.AT_FDCWD, oldp, unix.AT_FDCWD, newp, uint(flags))
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	for _, c := range moved {
		c.last.Store(&newp)
	}
	for _, c := range swapped {
		c.last.Store(&oldp)
	}
	switch {
	case flags&unix.RENAME_EXCHANGE != 0:
		n.r.changed(odir, obefore, "", "")
		n.r.changed(ndir, nbefore, "", "")
	case odir == ndir:
		n.r.changed(odir, obefore, target, oldStored)
	default:
		n.r.changed(odir, obefore, "", oldStored)
		n.r.changed(ndir, nbefore, target, "")
	}
	return 0
}

// spellings returns the nodes among n's children that are the
// non-directory at p.
func (n *node) spellings(p string) []*node {
	st, gen, err := statx(p, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil || st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return nil
	}
	var out []*node
	for _, ch := range n.Children() {
		if c, ok := ch.Operations().(*node); ok && c.is(&st, gen) {
			out = append(out, c)
		}
	}
	return out
}

// keyOf is the dirKey of dir now, or one that matches no listing.
func keyOf(dir string) dirKey {
	k, _ := dirKeyOf(dir)
	return k
}

// statx is lstat (flags AT_SYMLINK_NOFOLLOW) or stat of p, with the
// birth time (in nanoseconds; 1 where there is none).
func statx(p string, flags int) (syscall.Stat_t, uint64, error) {
	return doStatx(unix.AT_FDCWD, p, flags)
}

func fstatx(fd int) (syscall.Stat_t, uint64, error) {
	return doStatx(fd, "", unix.AT_EMPTY_PATH)
}

func doStatx(dirfd int, p string, flags int) (syscall.Stat_t, uint64, error) {
	var st syscall.Stat_t
	var x unix.Statx_t
	err := unix.Statx(dirfd, p, flags, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &x)
	if errors.Is(err, unix.ENOSYS) {
		// No statx: no birth time either.
		switch {
		case flags&unix.AT_EMPTY_PATH != 0:
			err = syscall.Fstat(dirfd, &st)
		case flags&unix.AT_SYMLINK_NOFOLLOW != 0:
			err = syscall.Lstat(p, &st)
		default:
			err = syscall.Stat(p, &st)
		}
		return st, 1, err
	}
	if err != nil {
		return st, 0, err
	}
	st.Dev = unix.Mkdev(x.Dev_major, x.Dev_minor)
	st.Ino = x.Ino
	setNum(&st.Nlink, int64(x.Nlink))
	st.Mode = uint32(x.Mode)
	st.Uid = x.Uid
	st.Gid = x.Gid
	st.Rdev = unix.Mkdev(x.Rdev_major, x.Rdev_minor)
	st.Size = int64(x.Size)
	setNum(&st.Blksize, int64(x.Blksize))
	st.Blocks = int64(x.Blocks)
	st.Atim = timespec(x.Atime)
	st.Mtim = timespec(x.Mtime)
	st.Ctim = timespec(x.Ctime)
	gen := uint64(1)
	if x.Mask&unix.STATX_BTIME != 0 && (x.Btime.Sec != 0 || x.Btime.Nsec != 0) {
		gen = uint64(x.Btime.Sec)*1e9 + uint64(x.Btime.Nsec)
	}
	return st, gen, nil
}

func timespec(t unix.StatxTimestamp) syscall.Timespec {
	return syscall.NsecToTimespec(t.Sec*1e9 + int64(t.Nsec))
}

// setNum stores v in *dst, whose width differs between architectures.
func setNum[T ~int32 | ~int64 | ~uint32 | ~uint64](dst *T, v int64) { *dst = T(v) }

// vfatBad are the characters vfat and exFAT refuse in a name, besides
// control characters and '/'.
const vfatBad = `"*:<>?\\|`

// vfatName returns name as the view stores it: itself, or with
// Options.VfatNames its trailing dots and spaces dropped, or EINVAL where
// it holds a character vfat refuses or is nothing but dots and spaces.
func (r *fsRoot) vfatName(name string) (string, syscall.Errno) {
	if !r.vfat || name == "." || name == ".." {
		return name, 0
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(vfatBad, c) {
			return "", syscall.EINVAL
		}
	}
	stripped := strings.TrimRight(name, ". ")
	if stripped == "" {
		return "", syscall.EINVAL
	}
	return stripped, 0
}

// entry returns n's directory and the stored name of its entry name,
// ENOENT where there is none.
func (n *node) entry(name string) (dir, stored string, errno syscall.Errno) {
	if dir, _, errno = n.path(); errno != 0 {
		return "", "", errno
	}
	if stored, errno = n.r.existing(dir, name); errno == 0 && stored == "" {
		errno = syscall.ENOENT
	}
	return dir, stored, errno
}
