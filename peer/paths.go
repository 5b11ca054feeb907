package peer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
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

// resolveDir returns the absolute directory that would hold p under root,
// or an error naming the first existing component of it that is a symlink
// or a non-directory (unsafeOpen uses it to explain a refusal). It stops
// at the first missing one, below which nothing exists.
func resolveDir(root, p string) (string, error) {
	dir := path.Dir(p)
	if dir == "." {
		return root, nil
	}
	cur := root
	for _, seg := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nativePath(root, dir), nil
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

// beneath is how openParent resolves a path under the folder's root:
// inside it, through no symlink at all (openat2).
var beneath = unix.OpenHow{Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}

// noOpenat2 is set once openat2 has turned out not to exist here (a kernel
// before 5.6): openParent then walks the parents (walkParent). A refusal
// (EPERM from a seccomp filter) walks for that call only.
var noOpenat2 atomic.Bool

// openat2 is unix.Openat2 (a variable for tests).
var openat2 = unix.Openat2

// openRoot opens the folder's root, for openParent.
func openRoot(root string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open folder root", Path: root, Err: err}
	}
	return fd, nil
}

// hasMarker reports whether the root opened as rootFD holds the folder's
// marker directory (markerDir).
func hasMarker(rootFD int) bool {
	var st unix.Stat_t
	err := unix.Fstatat(rootFD, ".syncd", &st, unix.AT_SYMLINK_NOFOLLOW)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

const (
	tempCreate = unix.O_RDWR | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	tempReopen = unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC
	dirOpen    = unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
)

// parentFD is an open directory (O_PATH) that holds a pulled file: the
// folder's root (borrowed: it stays open for the pull pass) or a directory
// below it (owned: close closes it).
type parentFD struct {
	fd  int
	own bool
}

func (d parentFD) close() {
	if d.own {
		unix.Close(d.fd)
	}
}

// createTemp opens the temp file tmpRel (folder-relative) for a pull of
// p, creating it (fresh) or, if an earlier try left it, opening it for a
// resume. Missing parents are made. The directory holding it comes back
// open, for removing the temp file if the pull fails; the commit opens it
// again.
func (f *folder) createTemp(p, tmpRel string) (*os.File, bool, parentFD, error) {
	return f.openUnder(p, tmpRel, tempCreate, tempReopen, true)
}

// openUnder opens rel (folder-relative; p is the pulled path it is for)
// with flags, or if that finds it there (EEXIST) and reopen is not 0,
// with reopen (fresh is then false), and returns it with the directory
// that holds it (the caller closes both). Nothing is opened by an
// absolute path after a check of the parents, so that a symlink swapped in
// for a parent at any moment cannot redirect it outside the folder: the
// directory is opened from the folder's root (f.rootFD) through plain
// directories only (openParent), and rel in it by its last name, with
// O_NOFOLLOW. A symlink or non-directory on the way, or a symlink at rel
// itself, is refused with ErrUnsafePath.
func (f *folder) openUnder(p, rel string, flags, reopen int, makeParents bool) (*os.File, bool, parentFD, error) {
	name := nativePath(f.cfg.Root, rel)
	if h := f.e.o.hooks.beforeOpen; h != nil {
		h(p)
	}
	d, err := f.openParent(p, rel, makeParents)
	if err != nil {
		return nil, false, parentFD{}, err
	}
	fd, fresh, err := openTwice(flags, reopen, func(fl int) (int, error) {
		return unix.Openat(d.fd, path.Base(rel), fl, uint32(permFor(fl)))
	})
	if err != nil {
		d.close()
		if err == unix.ELOOP {
			return nil, false, parentFD{}, unsafeOpen(f.cfg.Root, p, name)
		}
		return nil, false, parentFD{}, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), fresh, d, nil
}

// openParent opens the directory that holds rel from the folder's root,
// through plain directories only: one openat2 with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS, or where openat2 is missing or refused, or a
// parent is missing and makeParents says to make it, one openat per
// parent (walkParent). A directory it makes is 0755 (a pulled directory's
// own mode comes with its record), or 0700 under .syncd.
func (f *folder) openParent(p, rel string, makeParents bool) (parentFD, error) {
	if f.rootFD < 0 {
		if f.rootErr != nil {
			return parentFD{}, f.rootErr
		}
		return parentFD{}, errors.New("the folder's root is not open")
	}
	var mkdir uint32
	switch {
	case !makeParents:
	case strings.HasPrefix(rel, ".syncd/"):
		mkdir = privateDir
	default:
		mkdir = 0o755
	}
	return openParentAt(f.rootFD, f.cfg.Root, p, rel, mkdir)
}

// privateDir is the mode of syncd's own directories (the trash's): they
// keep old versions of files whose own directories may be private.
const privateDir = 0o700

// openParentAt is openParent from rootFD, the descriptor of root; it makes
// missing parents with mode mkdir, none if mkdir is 0.
func openParentAt(rootFD int, root, p, rel string, mkdir uint32) (parentFD, error) {
	dir := path.Dir(rel)
	if dir == "." {
		return parentFD{fd: rootFD}, nil
	}
	if !noOpenat2.Load() {
		how := beneath
		how.Flags = dirOpen
		fd, err := retryEINTR(func() (int, error) { return openat2(rootFD, dir, &how) })
		switch {
		case err == nil:
			return parentFD{fd: fd, own: true}, nil
		case err == unix.ENOSYS || err == unix.E2BIG:
			noOpenat2.Store(true)
		case err == unix.EPERM, err == unix.ENOENT && mkdir != 0:
		case err == unix.ELOOP || err == unix.ENOTDIR || err == unix.EXDEV:
			return parentFD{}, unsafeOpen(root, p, nativePath(root, rel))
		default:
			return parentFD{}, &fs.PathError{Op: "open", Path: nativePath(root, dir), Err: err}
		}
	}
	return walkParent(rootFD, root, p, rel, mkdir)
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

// walkParent is openParentAt without openat2: it opens each parent of rel
// from the root with O_NOFOLLOW|O_DIRECTORY (making a missing one with mode
// mkdir, unless 0), each relative to the one before, already checked and
// held open.
func walkParent(rootFD int, root, p, rel string, mkdir uint32) (parentFD, error) {
	d := parentFD{fd: rootFD}
	for _, seg := range strings.Split(path.Dir(rel), "/") {
		next, err := openDirAt(d.fd, seg)
		if err == unix.ENOENT && mkdir != 0 {
			if err = unix.Mkdirat(d.fd, seg, mkdir); err == nil || err == unix.EEXIST {
				next, err = openDirAt(d.fd, seg)
			}
		}
		d.close()
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return parentFD{}, unsafeOpen(root, p, nativePath(root, rel))
		}
		if err != nil {
			return parentFD{}, &fs.PathError{Op: "open", Path: nativePath(root, path.Dir(rel)), Err: err}
		}
		d = parentFD{fd: next, own: true}
	}
	return d, nil
}

// openDirAt opens the directory name in dirfd (O_PATH), refusing a symlink
// (ELOOP or ENOTDIR) and anything else that is not a directory (ENOTDIR).
func openDirAt(dirfd int, name string) (int, error) {
	return retryEINTR(func() (int, error) {
		return unix.Openat(dirfd, name, dirOpen, 0)
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

// procFD is the /proc link of the descriptor fd, which reaches the same
// inode whatever happens to its path.
func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// chmodFD sets the mode of what fd (which may be O_PATH, which fchmod
// refuses) is open on, through its /proc link. ENOENT means /proc is not
// mounted.
func chmodFD(fd int, perm uint32) error { return unix.Chmod(procFD(fd), perm) }

// syncDirAt makes the entries of the directory dirfd (which may be O_PATH)
// durable.
func syncDirAt(dirfd int) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err == nil {
		unix.Fsync(fd)
		unix.Close(fd)
	}
}

// openBeneath opens rel (folder-relative, checked) in the folder whose
// root is open as rootFD, with flags (which hold O_NOFOLLOW), through
// plain directories only: one openat2 with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS, or where openat2 is missing or refused, an openat
// of its last name in its parent from walkParent.
func openBeneath(rootFD int, root, rel string, flags int) (int, error) {
	if !noOpenat2.Load() {
		how := beneath
		how.Flags = uint64(flags)
		fd, err := retryEINTR(func() (int, error) { return openat2(rootFD, rel, &how) })
		switch err {
		case unix.ENOSYS, unix.E2BIG:
			noOpenat2.Store(true)
		case unix.EPERM:
		default:
			return fd, err
		}
	}
	d, err := walkParent(rootFD, root, rel, rel, 0)
	if err != nil {
		return -1, err
	}
	defer d.close()
	return retryEINTR(func() (int, error) { return unix.Openat(d.fd, path.Base(rel), flags, 0) })
}
