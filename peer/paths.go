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
			return filepath.Join(root, filepath.FromSlash(dir)), nil // created later by mkdirAll
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("%w: %s: parent %s is a symlink", ErrUnsafePath, p, cur)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%w: %s: parent %s is not a directory", ErrUnsafePath, p, cur)
		}
	}
	return cur, nil
}

// mkdirAll creates the parents of p under root, refusing to pass through a
// symlink.
func mkdirAll(root, p string) (string, error) {
	dir := path.Dir(p)
	if dir == "." {
		return root, nil
	}
	cur := root
	for _, seg := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", err
			}
			continue
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
