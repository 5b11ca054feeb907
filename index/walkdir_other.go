//go:build !linux

package index

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// dirHandle is a directory the walk holds open (see the Linux version),
// here an os.Root: its listing stats every entry.
type dirHandle struct {
	r   *os.Root
	abs string
}

func openWalkRoot(abs string) (*dirHandle, error) {
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, err
	}
	return &dirHandle{r, abs}, nil
}

// openDir opens the directory rel below d, and only if rel names it
// there without a symlink.
func (d *dirHandle) openDir(rel string) (h *dirHandle, replaced bool, err error) {
	r, err := d.r.OpenRoot(rel)
	fi, lerr := d.r.Lstat(rel)
	if err != nil {
		return nil, lerr == nil && !fi.IsDir() || errors.Is(lerr, fs.ErrNotExist), err
	}
	dfi, derr := r.Stat(".")
	if lerr != nil || derr != nil || !fi.IsDir() || !os.SameFile(fi, dfi) {
		r.Close()
		return nil, true, nil
	}
	return &dirHandle{r, filepath.Join(d.abs, filepath.FromSlash(rel))}, false, nil
}

func (d *dirHandle) list() ([]fs.DirEntry, error) {
	f, err := d.r.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

func (d *dirHandle) lstat(name string) (fs.FileInfo, error) { return d.r.Lstat(name) }

func (d *dirHandle) Close() { d.r.Close() }
