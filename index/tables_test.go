package index

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenDamagedTable: a table of the index cut short makes Open return
// an error (ErrCorrupt) instead of badger panicking in a goroutine of its
// own, which kills the process. Each open runs in a child process, so that
// such a panic fails the test instead of ending it.
func TestOpenDamagedTable(t *testing.T) {
	if dir := os.Getenv("SYNCD_TEST_OPEN_DIR"); dir != "" {
		s, err := Open(dir, Options{})
		if err == nil {
			s.Close()
		}
		switch {
		case err == nil:
			os.Stdout.WriteString("OPEN: ok\n")
		case errors.Is(err, ErrCorrupt):
			os.Stdout.WriteString("OPEN: corrupt: " + err.Error() + "\n")
		default:
			os.Stdout.WriteString("OPEN: other error: " + err.Error() + "\n")
		}
		os.Exit(0)
	}
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Path: "d", Kind: Dir, Mode: 0o755, ModTime: 1, Version: Vector{{Device: 1, Value: 1}}, HashVersion: HashVersion}
	if _, err := s.PutLocal("f", r); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // flushes the memtable into 000001.sst
		t.Fatal(err)
	}
	sst := filepath.Join(dir, "000001.sst")
	whole, err := os.ReadFile(sst)
	if err != nil {
		t.Fatal(err)
	}
	open := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenDamagedTable$")
		cmd.Env = append(os.Environ(), "SYNCD_TEST_OPEN_DIR="+dir)
		out, err := cmd.CombinedOutput()
		i := strings.Index(string(out), "OPEN: ")
		if err != nil || i < 0 {
			lines := strings.SplitN(string(out), "\n", 4)
			return "crashed (" + errString(err) + "): " + strings.Join(lines[:min(3, len(lines))], " | ")
		}
		return strings.SplitN(string(out[i:]), "\n", 2)[0]
	}
	if got := open(); got != "OPEN: ok" {
		t.Fatalf("the whole table: %s", got)
	}
	for _, cut := range []int{len(whole) / 4, len(whole) / 3, len(whole) / 2, len(whole) - 16, len(whole) - 4} {
		if err := os.WriteFile(sst, whole[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		if got := open(); !strings.HasPrefix(got, "OPEN: corrupt: ") && !strings.HasPrefix(got, "OPEN: other error: ") {
			t.Errorf("the table of %d bytes cut to %d: %s", len(whole), cut, got)
		}
	}
	// A table the MANIFEST does not list (half written by a compaction cut
	// short) is not read: badger removes it.
	if err := os.WriteFile(sst, whole, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "000009.sst"), whole[:len(whole)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if got := open(); got != "OPEN: ok" {
		t.Errorf("with a stray half-written table: %s", got)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
