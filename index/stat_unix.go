//go:build unix

package index

import (
	"io/fs"
	"os"
	"syscall"
)

// inode returns the inode number of fi (0 if unknown).
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// nlink returns the link count of fi (1 if unknown).
func nlink(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// OpenFile is os.OpenFile for regular files, without the network poller.
// os.OpenFile on Linux offers every descriptor to the poller: it sets
// O_NONBLOCK, tries epoll_ctl (refused for regular files) and clears
// O_NONBLOCK again, five syscalls beside the open; os.NewFile costs one. A sync touches every file
// at least twice (the scan and the block server, or the pull), and on a VM
// each syscall is dear. The file returned is in blocking mode, as os.OpenFile
// leaves a regular file; O_CLOEXEC is added to flag.
func OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	for {
		fd, err := syscall.Open(name, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}
