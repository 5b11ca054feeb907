package index

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestStableReader: a large file is read up to the size the walk saw,
// and a file that changes while it is read stops the read at the next
// look instead of being read to its end.
func TestStableReader(t *testing.T) {
	old := stableCheck
	stableCheck = 1 << 20
	t.Cleanup(func() { stableCheck = old })
	path := filepath.Join(t.TempDir(), "video.mp4")
	const size = 8 << 20
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(change func()) (int64, error) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, _ := f.Stat()
		r := &stableReader{f: f, left: fi.Size()}
		var n int64
		buf := make([]byte, 256<<10)
		for {
			m, err := r.Read(buf)
			n += int64(m)
			if n >= 2<<20 && change != nil {
				change()
				change = nil
			}
			if err != nil {
				return n, err
			}
		}
	}
	if n, err := read(nil); n != size || err != io.EOF {
		t.Errorf("unchanged file: read %d, %v; want %d, EOF", n, err, size)
	}
	appendTo := func() {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(make([]byte, 1<<20))
		f.Close()
	}
	n, err := read(appendTo)
	if !errors.Is(err, errChangedMidHash) || n > 4<<20 {
		t.Errorf("file appended to while read: read %d, %v; want %v within %d bytes", n, err, errChangedMidHash, 4<<20)
	}
	// The file is 9 MiB now, and read to the size its stat gave.
	if n, err := read(nil); n != size+1<<20 || err != io.EOF {
		t.Errorf("file after the append: read %d, %v; want %d, EOF", n, err, size+1<<20)
	}
}
