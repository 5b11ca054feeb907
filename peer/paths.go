package peer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

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
