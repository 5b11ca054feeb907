//go:build unix

package index

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	f, err := OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("hello"), 3); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(name)
	if err != nil || fi.Size() != 8 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created file: %v, %v", fi, err)
	}
	f, err = OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := f.ReadAt(buf, 3); err != nil || string(buf) != "hello" {
		t.Errorf("ReadAt = %q, %v", buf, err)
	}
	f.Close()
	if _, err := OpenFile(filepath.Join(dir, "missing"), os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if err := os.Symlink(name, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenFile(filepath.Join(dir, "link"), os.O_RDONLY|syscall.O_NOFOLLOW, 0); err == nil {
		f.Close()
		t.Error("a symlink was opened with O_NOFOLLOW")
	}
}

// BenchmarkOpenReadClose: open, a 32 KiB pread and close of one file, as the
// block server does per small block, with os.OpenFile and OpenFile.
func BenchmarkOpenReadClose(b *testing.B) {
	name := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, 32<<10), 0o644); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	for _, v := range []struct {
		name string
		open func(string, int, fs.FileMode) (*os.File, error)
	}{{"os.OpenFile", os.OpenFile}, {"OpenFile", OpenFile}} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				f, err := v.open(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.ReadAt(buf, 0); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
