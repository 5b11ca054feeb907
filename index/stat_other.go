//go:build !unix

package index

import (
	"io/fs"
	"os"
)

func inode(fs.FileInfo) uint64 { return 0 }

func nlink(fs.FileInfo) uint64 { return 1 }

// OpenFile is os.OpenFile (see the unix version).
func OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

// openDir opens the directory at name (see the unix version).
func openDir(name string) (*os.File, error) { return os.Open(name) }

// sameDir reports whether the path name still names the directory d.
func sameDir(d *os.File, name string) bool {
	dfi, err := d.Stat()
	if err != nil {
		return false
	}
	fi, err := os.Lstat(name)
	return err == nil && fi.IsDir() && os.SameFile(dfi, fi)
}

// replacedErr reports whether err from openDir says that the path no
// longer names a directory.
func replacedErr(error) bool { return false }
