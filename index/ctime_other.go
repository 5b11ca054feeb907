//go:build !linux

package index

import "io/fs"

// Ctime returns 0 (unknown) where the change time is not read: records
// then carry none, and the scanner compares the rest of the stat.
func Ctime(fs.FileInfo) int64 { return 0 }
