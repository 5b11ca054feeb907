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

// beneath is how createTemp resolves a temp file's path under the folder's
// root: inside it, through no symlink at all (openat2).
var beneath = unix.OpenHow{Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}

// noOpenat2 is set once openat2 has turned out not to exist here (a kernel
// before 5.6): createTemp then checks the parents with lstat first. A
// refusal (EPERM from a seccomp filter) falls back only for that call.
var noOpenat2 atomic.Bool

// openat2 is unix.Openat2 (a variable for tests).
var openat2 = unix.Openat2

// openRoot opens the folder's root for createTemp (-1 if it cannot).
func openRoot(root string) int {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// createTemp opens the temp file tmpRel (folder-relative) for a pull of
// p, creating it (fresh) or, if an earlier try left it, opening it for a
// resume. The parents must be plain directories inside the folder: with
// the root open (f.rootFD) one openat2 checks that as it opens, so that no
// symlink swapped in for a parent after a check can redirect the write,
// and the usual case costs one syscall instead of an lstat per parent. A
// missing parent is made (mkdirAll) and the open tried again; anything
// else openat2 refuses (a symlink, a non-directory, openat2 itself not
// allowed here) goes the checked way, which explains the refusal.
func (f *folder) createTemp(p, tmpRel string) (fd *os.File, fresh bool, err error) {
	if f.rootFD >= 0 && !noOpenat2.Load() {
		made := false
		for {
			if h := f.e.o.hooks.beforeOpenTemp; h != nil {
				h(p)
			}
			fd, fresh, err = openTempAt(f.rootFD, tmpRel, nativePath(f.cfg.Root, tmpRel))
			switch {
			case err == nil:
				return fd, fresh, nil
			case errors.Is(err, unix.ENOENT) && !made:
				if _, err := mkdirAll(f.cfg.Root, p); err != nil {
					return nil, false, err
				}
				made = true
				continue
			case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.E2BIG):
				noOpenat2.Store(true)
			}
			break
		}
	}
	if _, err := mkdirAll(f.cfg.Root, p); err != nil {
		return nil, false, err
	}
	if h := f.e.o.hooks.beforeOpenTemp; h != nil {
		h(p)
	}
	tmp := nativePath(f.cfg.Root, tmpRel)
	fd, err = index.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if errors.Is(err, fs.ErrExist) {
		fd, err = index.OpenFile(tmp, os.O_RDWR|oNoFollow, 0o600)
		return fd, false, err
	}
	return fd, err == nil, err
}

// openTempAt opens rel under the directory dirfd as createTemp does, with
// openat2: new (fresh) or, if it exists, as it is. name is its absolute
// path, for errors.
func openTempAt(dirfd int, rel, name string) (*os.File, bool, error) {
	how := beneath
	how.Flags = unix.O_RDWR | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	how.Mode = 0o600
	fresh := true
	fd, err := retryEINTR(func() (int, error) { return openat2(dirfd, rel, &how) })
	if err == unix.EEXIST {
		how.Flags &^= unix.O_CREAT | unix.O_EXCL
		how.Mode = 0
		fresh = false
		fd, err = retryEINTR(func() (int, error) { return openat2(dirfd, rel, &how) })
	}
	if err != nil {
		return nil, false, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), fresh, nil
}

func retryEINTR(fn func() (int, error)) (int, error) {
	for {
		fd, err := fn()
		if err != unix.EINTR {
			return fd, err
		}
	}
}
