package index

import (
	"io/fs"
	"syscall"
)

// Ctime returns the inode change time of fi in Unix ns (0 if unknown).
func Ctime(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano()
	}
	return 0
}
