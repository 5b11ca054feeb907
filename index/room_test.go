package index

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// TestIndexDiskFull: below MinIndexFree on the index's file system the
// store's writes fail with ErrIndexDiskFull (an ENOSPC) instead of writing
// into badger's memory maps, where a full disk is a SIGBUS that ends the
// daemon; reads go on, and writes come back with the space.
func TestIndexDiskFull(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	old := freeSpace
	freeSpace = func(string) (uint64, error) { return free.Load(), nil }
	t.Cleanup(func() { freeSpace = old })
	s := openTest(t, t.TempDir())
	blocks, id := chunkBlocks([]byte("x"))
	rec := func(p string) Record {
		return Record{Path: p, Kind: File, Size: 1, Mode: 0o644, Blocks: blocks, Content: id, Version: Vector{{1, 1}}, HashVersion: HashVersion}
	}
	if _, err := s.PutLocal("f", rec("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Epoch("f"); err != nil {
		t.Fatal(err)
	}
	free.Store(MinIndexFree - 1)
	writes := map[string]func() error{
		"PutLocal":    func() error { _, err := s.PutLocal("f", rec("b")); return err },
		"PutRemote":   func() error { return s.PutRemote("f", deviceid.ID{0xa}, 7, rec("c")) },
		"PutIntents":  func() error { _, err := s.PutIntents("f", []Record{rec("d")}); return err },
		"Epoch":       func() error { _, err := s.Epoch("g"); return err },
		"ForgetLocal": func() error { return s.ForgetLocal("f") },
	}
	for name, w := range writes {
		if err := w(); !errors.Is(err, ErrIndexDiskFull) || !errors.Is(err, syscall.ENOSPC) || !IsDiskFull(err) {
			t.Errorf("%s with the index's disk full = %v, want ErrIndexDiskFull", name, err)
		}
	}
	if _, ok, err := s.Local("f", "a"); err != nil || !ok {
		t.Errorf("Local with the disk full = %v, %v; want the record", ok, err)
	}
	// The epoch of a folder that has one is a read: peers are still
	// served what is recorded (handleChanges asks for it first).
	if _, err := s.Epoch("f"); err != nil {
		t.Errorf("Epoch of a folder that has one, with the disk full = %v", err)
	}
	free.Store(MinIndexFree)
	if _, err := s.PutLocal("f", rec("b")); err != nil {
		t.Errorf("PutLocal with the space back = %v", err)
	}
	// In memory, nothing is checked.
	m := openTest(t, "")
	free.Store(0)
	if _, err := m.PutLocal("f", rec("a")); err != nil {
		t.Errorf("PutLocal of an in-memory store = %v", err)
	}
}
