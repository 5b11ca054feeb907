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
