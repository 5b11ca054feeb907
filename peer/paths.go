package peer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/syncd-project/syncd/index"
)

// ErrUnsafePath is wrapped by every refusal of a path from a peer.
var ErrUnsafePath = errors.New("unsafe path")

// checkRemotePath validates a path that arrived from a peer before anything
// touches the disk: index.ValidPath's rules (relative, clean, no "..", no
// NUL, no drive letters) plus names this engine reserves.
func checkRemotePath(p string) error {
	if err := index.ValidPath(p); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsafePath, err)
	}
	for _, seg := range strings.Split(p, "/") {
		if strings.HasPrefix(seg, index.TempPrefix) {
			return fmt.Errorf("%w: %q uses the temp-file prefix", ErrUnsafePath, p)
		}
		if strings.EqualFold(seg, ".syncd") {
			return fmt.Errorf("%w: %q is inside .syncd", ErrUnsafePath, p)
		}
	}
	return nil
}

// resolveDir returns the absolute directory that will hold p under root,
// after checking that no existing component of it is a symlink or a
// non-directory, so that nothing is ever written through a link that leads
// outside the folder.
func resolveDir(root, p string) (string, error) { return parentDir(root, p, false) }

// mkdirAll creates the parents of p under root, refusing to pass through a
// symlink.
func mkdirAll(root, p string) (string, error) { return parentDir(root, p, true) }

// parentDir walks the parents of p under root and refuses a symlink or a
// non-directory among them. With create it makes the missing ones (and
// checks what is there after mkdir, so a link raced into place is refused
// too); without, it stops at the first missing one, below which nothing
// exists.
func parentDir(root, p string, create bool) (string, error) {
	dir := path.Dir(p)
	if dir == "." {
		return root, nil
	}
	cur := root
	for _, seg := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			if !create {
				return nativePath(root, dir), nil
			}
			if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", err
			}
			fi, err = os.Lstat(cur)
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
			return "", fmt.Errorf("%w: %s: parent %s is not a plain directory", ErrUnsafePath, p, cur)
		}
	}
	return cur, nil
}

// nativePath is p under root, for paths already checked.
func nativePath(root, p string) string {
	return filepath.Join(root, filepath.FromSlash(p))
}

// beneath is how openUnder resolves a path under the folder's root:
// inside it, through no symlink at all (openat2).
var beneath = unix.OpenHow{Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}

// noOpenat2 is set once openat2 has turned out not to exist here (a kernel
// before 5.6): openUnder then walks the parents (openWalk). A refusal
// (EPERM from a seccomp filter) walks for that call only.
var noOpenat2 atomic.Bool

// openat2 is unix.Openat2 (a variable for tests).
var openat2 = unix.Openat2

// openRoot opens the folder's root for openUnder.
func openRoot(root string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open folder root", Path: root, Err: err}
	}
	return fd, nil
}

const (
	tempCreate = unix.O_RDWR | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	tempReopen = unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC
)

// createTemp opens the temp file tmpRel (folder-relative) for a pull of
// p, creating it (fresh) or, if an earlier try left it, opening it for a
// resume. Missing parents are made.
func (f *folder) createTemp(p, tmpRel string) (*os.File, bool, error) {
	return f.openUnder(p, tmpRel, tempCreate, tempReopen, true)
}

// openUnder opens rel (folder-relative; p is the pulled path it is for)
// with flags, or if that finds it there (EEXIST) and reopen is not 0,
// with reopen (fresh is then false). It is opened from the folder's root
// (f.rootFD) through plain directories only, never by its absolute path
// after a check of the parents, so that a symlink swapped in for a parent
// at any moment cannot redirect it outside the folder: one openat2 with
// RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS (so the usual pull costs one
// syscall instead of an lstat per parent), or where openat2 is missing or
// refused, or a parent is missing and makeParents says to make it, one
// openat per parent (openWalk). A symlink or non-directory on the way, or
// a symlink at rel itself, is refused with ErrUnsafePath.
func (f *folder) openUnder(p, rel string, flags, reopen int, makeParents bool) (*os.File, bool, error) {
	if f.rootFD < 0 {
		if f.rootErr != nil {
			return nil, false, f.rootErr
		}
		return nil, false, errors.New("the folder's root is not open")
	}
	name := nativePath(f.cfg.Root, rel)
	hooked := false
	if !noOpenat2.Load() {
		if h := f.e.o.hooks.beforeOpen; h != nil {
			h(p)
		}
		hooked = true
		fd, fresh, err := openTwice(flags, reopen, func(fl int) (int, error) {
			how := beneath
			how.Flags, how.Mode = uint64(fl), permFor(fl)
			return openat2(f.rootFD, rel, &how)
		})
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), name), fresh, nil
		case err == unix.ENOSYS || err == unix.E2BIG:
			noOpenat2.Store(true)
		case err == unix.EPERM, err == unix.ENOENT && makeParents:
		case err == unix.ELOOP || err == unix.ENOTDIR || err == unix.EXDEV:
			return nil, false, unsafeOpen(f.cfg.Root, p, name)
		default:
			return nil, false, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	return f.openWalk(p, rel, name, flags, reopen, makeParents, hooked)
}

// openTwice opens with flags, and if that finds the file there (EEXIST)
// and reopen is not 0, with reopen; fresh tells which.
func openTwice(flags, reopen int, open func(flags int) (int, error)) (fd int, fresh bool, err error) {
	fd, err = retryEINTR(func() (int, error) { return open(flags) })
	if err == unix.EEXIST && reopen != 0 {
		fd, err = retryEINTR(func() (int, error) { return open(reopen) })
		return fd, false, err
	}
	return fd, true, err
}

// permFor is the mode of a file created with flags: 0600 (a temp file,
// whose mode is set once it is complete), none without O_CREAT.
func permFor(flags int) uint64 {
	if flags&unix.O_CREAT != 0 {
		return 0o600
	}
	return 0
}

// unsafeOpen explains why name, for a pull of p, could not be opened
// through plain directories: a parent is not one (resolveDir says which),
// or name itself is a symlink.
func unsafeOpen(root, p, name string) error {
	if _, err := resolveDir(root, p); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s: %s or one of its parents is a symlink or not a directory", ErrUnsafePath, p, name)
}

// openWalk is openUnder without openat2: it opens each parent from the
// root with O_NOFOLLOW|O_DIRECTORY (making a missing one if makeParents),
// then rel in the last, so that every step is relative to a directory
// already checked and held open. hooked says the test hook ran already
// for this open.
func (f *folder) openWalk(p, rel, name string, flags, reopen int, makeParents, hooked bool) (*os.File, bool, error) {
	dirfd := f.rootFD
	defer func() {
		if dirfd != f.rootFD {
			unix.Close(dirfd)
		}
	}()
	dir, base := path.Split(rel)
	if dir != "" {
		for _, seg := range strings.Split(strings.TrimSuffix(dir, "/"), "/") {
			next, err := openDirAt(dirfd, seg)
			if err == unix.ENOENT && makeParents {
				if err = unix.Mkdirat(dirfd, seg, 0o755); err == nil || err == unix.EEXIST {
					next, err = openDirAt(dirfd, seg)
				}
			}
			if err == unix.ELOOP || err == unix.ENOTDIR {
				return nil, false, unsafeOpen(f.cfg.Root, p, name)
			}
			if err != nil {
				return nil, false, &fs.PathError{Op: "open", Path: name, Err: err}
			}
			if dirfd != f.rootFD {
				unix.Close(dirfd)
			}
			dirfd = next
		}
	}
	if h := f.e.o.hooks.beforeOpen; h != nil && !hooked {
		h(p)
	}
	fd, fresh, err := openTwice(flags, reopen, func(fl int) (int, error) {
		return unix.Openat(dirfd, base, fl, uint32(permFor(fl)))
	})
	if err == unix.ELOOP {
		return nil, false, unsafeOpen(f.cfg.Root, p, name)
	}
	if err != nil {
		return nil, false, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), fresh, nil
}

// openDirAt opens the directory name in dirfd (O_PATH), refusing a symlink
// (ELOOP or ENOTDIR) and anything else that is not a directory (ENOTDIR).
func openDirAt(dirfd int, name string) (int, error) {
	return retryEINTR(func() (int, error) {
		return unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
}

func retryEINTR(fn func() (int, error)) (int, error) {
	for {
		fd, err := fn()
		if err != unix.EINTR {
			return fd, err
		}
	}
}
