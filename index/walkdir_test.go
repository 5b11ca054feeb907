package index

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func review30gFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// TestScanWalkNoFDLeak: every error path of the descriptor walk
// (a directory replaced by a symlink, a file, or gone, before its open;
// a scan cancelled inside a deep tree) closes what it opened.
func TestScanWalkNoFDLeak(t *testing.T) {
	e := newScanEnv(t)
	for _, d := range []string{"a/x/y/z", "b/q", "c/r", "d/s"} {
		e.write(d+"/f", "1")
	}
	e.scan()
	before := review30gFDs(t)
	for round := 0; round < 5; round++ {
		e.sc.hooks.dirOpened = func(abs string, opened bool) {
			if opened {
				return
			}
			switch filepath.Base(abs) {
			case "b":
				os.Rename(abs, abs+".old")
				os.Symlink("/", abs)
			case "c":
				os.RemoveAll(abs)
				os.WriteFile(abs, []byte("f"), 0o644)
			case "d":
				os.RemoveAll(abs)
			}
		}
		e.scan()
		e.sc.hooks.dirOpened = nil
		ctx, cancel := context.WithCancel(context.Background())
		e.sc.hooks.dirOpened = func(abs string, opened bool) {
			if filepath.Base(abs) == "z" && opened {
				cancel()
			}
		}
		e.sc.Scan(ctx)
		e.sc.hooks.dirOpened = nil
		for _, n := range []string{"b", "b.old", "c", "d"} {
			os.RemoveAll(filepath.Join(e.root, n))
		}
		for _, d := range []string{"b/q", "c/r", "d/s"} {
			e.write(d+"/f", "1")
		}
		e.scan()
	}
	if after := review30gFDs(t); after > before {
		t.Fatalf("descriptors open: %d before, %d after the scans", before, after)
	}
}

// TestScanStatInfoAsLstat: the walk's own FileInfo is os.Lstat's in
// all the scanner reads (name, size, mode with setuid/setgid/sticky and
// type, mtime to the ns, inode, nlink, ctime).
func TestScanStatInfoAsLstat(t *testing.T) {
	root := t.TempDir()
	mk := func(n string, mode os.FileMode) {
		p := filepath.Join(root, n)
		os.WriteFile(p, []byte("abc"), 0o644)
		os.Chmod(p, mode)
	}
	mk("suid", 0o4755|os.ModeSetuid)
	os.Chmod(filepath.Join(root, "suid"), 0o755|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
	mk("plain", 0o600)
	os.Mkdir(filepath.Join(root, "dir"), 0o1777)
	os.Chmod(filepath.Join(root, "dir"), 0o777|os.ModeSticky)
	os.Symlink("nowhere", filepath.Join(root, "link"))
	syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644)
	os.Link(filepath.Join(root, "plain"), filepath.Join(root, "plain2"))
	d, err := openWalkRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, n := range []string{"suid", "plain", "dir", "link", "fifo", "plain2"} {
		a, err := d.lstat(n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.Lstat(filepath.Join(root, n))
		if err != nil {
			t.Fatal(err)
		}
		if a.Name() != b.Name() || a.Size() != b.Size() || a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) ||
			a.ModTime().UnixNano() != b.ModTime().UnixNano() || a.IsDir() != b.IsDir() ||
			inode(a) != inode(b) || nlink(a) != nlink(b) || Ctime(a) != Ctime(b) {
			t.Errorf("%s: walk %v %v %v %v, Lstat %v %v %v %v", n, a.Name(), a.Mode(), a.ModTime(), a.Size(), b.Name(), b.Mode(), b.ModTime(), b.Size())
		}
	}
}
