package index

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestScanSpecialFiles: a FIFO, a socket and (as root) a device node are
// not synced, do not block the scan, and are said once, at warning level,
// and counted; a synced file replaced by a FIFO is buried, by full and by
// targeted scans, so that peers stop asking for blocks no one serves. It
// kept its live record, and a new peer waited for its blocks for ever.
func TestScanSpecialFiles(t *testing.T) {
	e := newScanEnv(t)
	var logs bytes.Buffer
	e.sc = NewScanner(e.st, "f", e.root, ScanOptions{Self: self, Workers: 2,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	e.write("was-file", "synced content")
	e.write("was-too", "synced content too")
	e.write("ok", "ok")
	e.scan()
	for _, p := range []string{"was-file", "was-too"} {
		if err := os.Remove(filepath.Join(e.root, p)); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(e.root, p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(e.root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(e.root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	special := 4
	if err := syscall.Mknod(filepath.Join(e.root, "null"), syscall.S_IFCHR|0o644, 1<<8|3); err == nil {
		special++
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("mknod: %v (CI runs as root)", err)
	}

	// A targeted scan of one of them buries it.
	res := e.scan("was-too")
	if r := e.rec("was-too"); !r.Deleted || res.Special != 1 {
		t.Errorf("targeted scan of was-too (a FIFO now): deleted=%v, special=%d; want a tombstone, 1", r.Deleted, res.Special)
	}
	done := make(chan ScanResult, 1)
	go func() { done <- e.scan() }()
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the scan blocked on a special file")
	}
	for _, p := range []string{"fifo", "sock", "null"} {
		if _, ok, _ := e.st.Local("f", p); ok {
			t.Errorf("%s has a record", p)
		}
	}
	if r := e.rec("was-file"); !r.Deleted {
		t.Errorf("was-file, replaced by a FIFO, keeps its live record")
	}
	if res.Special != special || res.Deleted != 1 {
		t.Errorf("full scan: special %d, deleted %d; want %d, 1", res.Special, res.Deleted, special)
	}
	e.scan()
	if n := strings.Count(logs.String(), "level=WARN"); n != special {
		t.Errorf("%d warnings over three scans, want one for each of the %d special files:\n%s", n, special, logs.String())
	}
}
