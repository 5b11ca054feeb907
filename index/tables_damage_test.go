package index

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestDamagedTableBlock: a table of the index with damaged bytes inside
// (a bad sector, bit rot; not cut short) opened, and the first walk of the
// folder's records panicked inside badger's block iterator: the daemon
// died with a Go trace at every start. Open now checks every block and
// says the index is damaged (ErrCorrupt, and the daemon's hint to move it
// away). Each open runs in a child process, so that a panic fails the
// test.
func TestDamagedTableBlock(t *testing.T) {
	if dir := os.Getenv("SYNCD_DAMAGED_INDEX"); dir != "" {
		s, err := Open(dir, Options{})
		if err != nil {
			fmt.Printf("RESULT: open: corrupt=%v: %v\n", errors.Is(err, ErrCorrupt), err)
			os.Exit(0)
		}
		n := 0
		err = s.WalkLocal("f", func(Record) error { n++; return nil })
		fmt.Printf("RESULT: walk: %d records, corrupt=%v: %v\n", n, errors.Is(err, ErrCorrupt), err)
		os.Exit(0)
	}
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for i := 0; i < 2000; i++ {
		recs = append(recs, Record{Path: fmt.Sprintf("dir/file-%05d", i), Kind: Dir, Mode: 0o755, ModTime: 1, Version: Vector{{Device: 1, Value: 1}}, HashVersion: HashVersion})
		if len(recs) == 200 {
			if _, err := s.PutLocal("f", recs...); err != nil {
				t.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if err := s.Close(); err != nil { // flushes the memtable into 000001.sst
		t.Fatal(err)
	}
	sst := filepath.Join(dir, "000001.sst")
	b, err := os.ReadFile(sst)
	if err != nil {
		t.Fatal(err)
	}
	// Damage some bytes in the first half (data blocks); the table keeps
	// its length, index and footer.
	for i := 100; i < len(b)/2; i += 97 {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(sst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDamagedTableBlock$")
	cmd.Env = append(os.Environ(), "SYNCD_DAMAGED_INDEX="+dir)
	out, err := cmd.CombinedOutput()
	o := string(out)
	i := strings.Index(o, "RESULT: ")
	if err != nil || i < 0 {
		lines := strings.Split(o, "\n")
		t.Fatalf("the process died (%v) reading a damaged index:\n%s", err, strings.Join(lines[:min(6, len(lines))], "\n"))
	}
	line := strings.SplitN(o[i:], "\n", 2)[0]
	if !strings.Contains(line, "corrupt=true") {
		t.Errorf("a damaged table: %s (want ErrCorrupt)", line)
	}
}

// TestMissingManifest: tables without the MANIFEST that lists them (a
// restore or copy of the home that missed it) are a damaged index, not a
// new one: badger would delete them and start empty, without a word.
func TestMissingManifest(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for i := 0; i < 500; i++ {
		recs = append(recs, Record{Path: fmt.Sprintf("photos/img-%04d", i), Kind: Dir, Mode: 0o755, ModTime: 1, Version: Vector{{Device: 1, Value: 1}}, HashVersion: HashVersion})
	}
	if _, err := s.PutLocal("f", recs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // flushes the memtable into a table
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("setup: no table written")
	}
	if err := os.Remove(filepath.Join(dir, badger.ManifestFilename)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of an index whose MANIFEST is gone = %v, want ErrCorrupt (badger deletes the tables it does not know)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(left) != len(tables) {
		t.Errorf("tables before Open %d, after %d", len(tables), len(left))
	}
}
