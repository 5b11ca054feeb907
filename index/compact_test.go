package index

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestCompactLoop writes ten memtables' worth of keys: without compactLoop
// (badger's own compactors are off) the writes would stall for good at
// level0Stall level-0 tables; with it they finish and level 0 drains.
func TestCompactLoop(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 1024)
	done := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(1, 2))
		for batch := range 400 {
			err := s.update(func(txn *badger.Txn) error {
				for i := range 100 {
					for j := range val {
						val[j] = byte(r.Uint32())
					}
					if err := txn.Set(fmt.Appendf(nil, "test/%05d/%03d", batch, i), val); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("writes stalled; levels:\n%s", s.db.LevelsToString())
	}
	if err := s.db.Sync(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.compactionDue() {
		if time.Now().After(deadline) {
			t.Fatalf("level 0 was not compacted:\n%s", s.db.LevelsToString())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var tables int
	for _, l := range s.db.Levels() {
		tables += l.NumTables
	}
	if tables == 0 {
		t.Fatalf("no tables at all: the writes did not reach the LSM tree:\n%s", s.db.LevelsToString())
	}
	// Everything written is still there.
	err = s.db.View(func(txn *badger.Txn) error {
		for _, k := range []string{"test/00000/000", "test/00199/050", "test/00399/099"} {
			if _, err := txn.Get([]byte(k)); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCompactLoopLooksWhileAsleep fills level 0 with writes that do not
// tell compactLoop (straight into badger): a sleeping loop still compacts
// them within compactIdle. Only a compaction moves tables below level 0;
// one level-0 table left by a flush after it is not due yet.
func TestCompactLoopLooksWhileAsleep(t *testing.T) {
	old := compactIdle
	compactIdle = 100 * time.Millisecond
	t.Cleanup(func() { compactIdle = old })
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 1024)
	r := rand.New(rand.NewPCG(3, 4))
	for batch := range 200 {
		err := s.db.Update(func(txn *badger.Txn) error {
			for i := range 100 {
				for j := range val {
					val[j] = byte(r.Uint32())
				}
				if err := txn.Set(fmt.Appendf(nil, "test/%05d/%03d", batch, i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		below := 0
		for _, l := range s.db.Levels() {
			if l.Level > 0 {
				below += l.NumTables
			}
		}
		if below > 0 && !s.compactionDue() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("level 0 was not compacted without a write to wake the loop:\n%s", s.db.LevelsToString())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
