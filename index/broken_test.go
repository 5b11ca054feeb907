package index

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestMemtableRotationFails: when badger cannot make its next memtable
// (the index directory deleted while the daemon runs, out of file
// descriptors), it is left without one, and the next read or Sync
// crashed the process. The deleted directory is now caught before the
// write, and a failed rotation leaves the store refusing everything with
// ErrIndexBroken. Each case runs in a child process, so that a crash
// fails the test.
func TestMemtableRotationFails(t *testing.T) {
	if mode := os.Getenv("SYNCD_BROKEN_MODE"); mode != "" {
		dir := os.Getenv("SYNCD_BROKEN_DIR")
		s, err := Open(dir, Options{})
		if err != nil {
			fmt.Printf("RESULT: setup: open: %v\n", err)
			os.Exit(0)
		}
		var hold []*os.File
		switch mode {
		case "deleted":
			os.RemoveAll(dir)
		case "nofds":
			var lim syscall.Rlimit
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
			lim.Cur = 256
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
			for {
				f, err := os.Open(os.DevNull)
				if err != nil {
					break
				}
				hold = append(hold, f)
			}
		}
		var werr error
		for b := 0; b < 1000 && werr == nil; b++ {
			var recs []Record
			for i := 0; i < 200; i++ {
				recs = append(recs, Record{Path: fmt.Sprintf("some/long/directory/name/for/padding/file-%03d-%05d", b, i), Kind: Dir, Mode: 0o755, ModTime: 1, Version: Vector{{Device: 1, Value: 1}}, HashVersion: HashVersion})
			}
			_, werr = s.PutLocal("f", recs...)
		}
		if werr == nil {
			fmt.Printf("RESULT: setup: no write failed\n")
			os.Exit(0)
		}
		for _, f := range hold {
			f.Close()
		}
		fmt.Printf("STEP: a write failed: %.120s\n", werr)
		_, _, lerr := s.Local("f", "some/long/directory/name/for/padding/file-000-00000")
		fmt.Printf("STEP: read: %v\n", lerr)
		fmt.Printf("RESULT: sync: %v\n", s.Sync())
		os.Exit(0)
	}
	for _, mode := range []string{"deleted", "nofds"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMemtableRotationFails$")
			cmd.Env = append(os.Environ(), "SYNCD_BROKEN_MODE="+mode, "SYNCD_BROKEN_DIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			o := string(out)
			i := strings.Index(o, "RESULT: ")
			if err != nil || i < 0 {
				var keep []string
				for _, l := range strings.Split(o, "\n") {
					if strings.HasPrefix(l, "STEP") || strings.HasPrefix(l, "panic") || strings.HasPrefix(l, "[signal") || strings.Contains(l, "badger/v4.") {
						keep = append(keep, l)
					}
				}
				t.Fatalf("the process died (%v) after a failed memtable rotation:\n%s", err, strings.Join(keep[:min(8, len(keep))], "\n"))
			}
			if line := strings.SplitN(o[i:], "\n", 2)[0]; strings.HasPrefix(line, "RESULT: setup") {
				t.Fatal(line)
			}
		})
	}
}

// TestCloseOnFullDisk: closing the store when its disk has filled up
// (after the guard refused a write) made badger write its memtable out
// through a memory map: a SIGBUS. Close now leaves it in its log, and the
// next open has every record. Needs root (a tmpfs of 256 MiB).
func TestCloseOnFullDisk(t *testing.T) {
	if dir := os.Getenv("SYNCD_FULL_INDEX"); dir != "" {
		s, err := Open(dir, Options{})
		if err != nil {
			fmt.Printf("RESULT: open: %v\n", err)
			os.Exit(0)
		}
		var recs []Record
		for i := 0; i < 100; i++ {
			recs = append(recs, Record{Path: fmt.Sprintf("d%03d", i), Kind: Dir, Mode: 0o755, ModTime: 1, Version: Vector{{Device: 1, Value: 1}}, HashVersion: HashVersion})
		}
		if _, err := s.PutLocal("f", recs...); err != nil {
			fmt.Printf("RESULT: put: %v\n", err)
			os.Exit(0)
		}
		// Something else fills the disk.
		f, err := os.Create(filepath.Join(filepath.Dir(dir), "filler"))
		if err != nil {
			fmt.Printf("RESULT: filler: %v\n", err)
			os.Exit(0)
		}
		buf := make([]byte, 1<<20)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
		f.Close()
		if _, err := s.PutLocal("f", Record{Path: "late", Kind: Dir, Mode: 0o755, ModTime: 1, Version: Vector{{Device: 1, Value: 1}}, HashVersion: HashVersion}); !IsDiskFull(err) {
			fmt.Printf("RESULT: write with the disk full: %v\n", err)
			os.Exit(0)
		}
		fmt.Printf("RESULT: closed: %v\n", s.Close())
		os.Exit(0)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	skip := t.Skipf // CI runs as root: there it fails instead
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("needs root to mount a tmpfs")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mnt).CombinedOutput(); err != nil {
		skip("mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	cmd := exec.Command(os.Args[0], "-test.run=^TestCloseOnFullDisk$")
	cmd.Env = append(os.Environ(), "SYNCD_FULL_INDEX="+filepath.Join(mnt, "index"))
	out, err := cmd.CombinedOutput()
	s := string(out)
	i := strings.Index(s, "RESULT: ")
	if err != nil || i < 0 {
		lines := strings.Split(s, "\n")
		t.Fatalf("the process died (%v) instead of Close returning:\n%s", err, strings.Join(lines[:min(14, len(lines))], "\n"))
	}
	if line := strings.SplitN(s[i:], "\n", 2)[0]; !strings.HasPrefix(line, "RESULT: closed: ") {
		t.Fatalf("setup: %s", line)
	}
	// With room again, the next open has every record that was written.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	st, err := Open(filepath.Join(mnt, "index"), Options{})
	if err != nil {
		t.Fatalf("open after the disk was full at close: %v", err)
	}
	defer st.Close()
	n := 0
	if err := st.WalkLocal("f", func(Record) error { n++; return nil }); err != nil || n != 100 {
		t.Errorf("after the disk was full at close, the index holds %d records (%v), want the 100 written", n, err)
	}
}
