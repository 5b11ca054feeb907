package index

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dirHandle is a directory the walk holds open. Its entries are listed
// from the descriptor (names and types, nothing stat'ed: an entry that
// cannot be stat'ed, or is ignored, costs the others nothing) and stat'ed
// relative to it (fstatat), and its subdirectories are opened from it
// with O_NOFOLLOW: nothing the walk looks at goes through a symlink put
// in place of a directory, in the folder or outside it.
type dirHandle struct {
	fd  int
	abs string // its path, for messages
}

const walkDirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC

// openWalkRoot opens the folder's root by path (it may be a symlink the
// user made).
func openWalkRoot(abs string) (*dirHandle, error) {
	fd, err := retryEINTR(func() (int, error) { return unix.Open(abs, walkDirFlags, 0) })
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	return &dirHandle{fd, abs}, nil
}

// openDir opens the directory rel (slash-separated, one or more names)
// below d, each name without following a symlink. replaced reports that
// a name is no longer a directory (a symlink, a file) or is gone.
func (d *dirHandle) openDir(rel string) (h *dirHandle, replaced bool, err error) {
	fd, abs := d.fd, d.abs
	for _, name := range strings.Split(rel, "/") {
		next, err := retryEINTR(func() (int, error) { return unix.Openat(fd, name, walkDirFlags|unix.O_NOFOLLOW, 0) })
		if fd != d.fd {
			unix.Close(fd)
		}
		abs = filepath.Join(abs, name)
		if err != nil {
			gone := err == unix.ELOOP || err == unix.ENOTDIR || err == unix.ENOENT
			return nil, gone, &fs.PathError{Op: "open", Path: abs, Err: err}
		}
		fd = next
	}
	return &dirHandle{fd, abs}, false, nil
}

// list returns the directory's entries, unsorted; their Info is not to be
// used (lstat does it through the descriptor).
func (d *dirHandle) list() ([]fs.DirEntry, error) {
	nfd, err := retryEINTR(func() (int, error) { return unix.FcntlInt(uintptr(d.fd), unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: d.abs, Err: err}
	}
	f := os.NewFile(uintptr(nfd), d.abs)
	defer f.Close()
	return f.ReadDir(-1)
}

// lstat is lstat of the entry name, through the descriptor.
func (d *dirHandle) lstat(name string) (fs.FileInfo, error) {
	return LstatAt(d.fd, name, filepath.Join(d.abs, name))
}

// LstatAt is lstat of the entry name of the directory dirfd (which may be
// O_PATH), as os.Lstat would give it: its Sys is a *syscall.Stat_t. full
// names the entry in errors.
func LstatAt(dirfd int, name, full string) (fs.FileInfo, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lstat", Path: full, Err: err}
		}
		return newStatInfo(name, &st), nil
	}
}

func (d *dirHandle) Close() { unix.Close(d.fd) }

func retryEINTR(fn func() (int, error)) (int, error) {
	for {
		fd, err := fn()
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// statInfo is the fs.FileInfo of an fstatat, as os.Lstat would give it:
// its Sys is a *syscall.Stat_t (inode, nlink and Ctime read it).
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func newStatInfo(name string, u *unix.Stat_t) *statInfo {
	return &statInfo{name: name, st: syscall.Stat_t{
		Dev: u.Dev, Ino: u.Ino, Nlink: u.Nlink, Mode: u.Mode, Uid: u.Uid, Gid: u.Gid,
		Rdev: u.Rdev, Size: u.Size, Blksize: u.Blksize, Blocks: u.Blocks,
		Atim: syscall.Timespec{Sec: u.Atim.Sec, Nsec: u.Atim.Nsec},
		Mtim: syscall.Timespec{Sec: u.Mtim.Sec, Nsec: u.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: u.Ctim.Sec, Nsec: u.Ctim.Nsec},
	}}
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return &s.st }

// Mode maps the stat mode as os does.
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
