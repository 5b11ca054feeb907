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
	done := make(chan error, 1)
	go func() {
		fill := randomBatches(1, 2)
		for batch := range 400 {
			if err := s.update(fill(batch)); err != nil {
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

// randomBatches returns the transactions of a test's writes: batch n sets
// the keys test/n/000 to test/n/099 to random 1 KiB values (from seeds a
// and b).
func randomBatches(a, b uint64) func(batch int) func(*badger.Txn) error {
	val := make([]byte, 1024)
	r := rand.New(rand.NewPCG(a, b))
	return func(batch int) func(*badger.Txn) error {
		return func(txn *badger.Txn) error {
			for i := range 100 {
				for j := range val {
					val[j] = byte(r.Uint32())
				}
				if err := txn.Set(fmt.Appendf(nil, "test/%05d/%03d", batch, i), val); err != nil {
					return err
				}
			}
			return nil
		}
	}
}

// writeAround fills badger with batches of 100 KiB straight, without
// telling compactLoop (as a write that did not signal would), until
// batches are written or, if untilLevel0 > 0, level 0 holds that many
// tables.
func writeAround(t *testing.T, s *Store, batches, untilLevel0 int) {
	t.Helper()
	fill := randomBatches(3, 4)
	for batch := range batches {
		if err := s.db.Update(fill(batch)); err != nil {
			t.Fatal(err)
		}
		if untilLevel0 == 0 {
			continue
		}
		level0, _ := levelCounts(s)
		if level0 >= untilLevel0-1 {
			// Near the count: let each flush land before the next batch,
			// so that none is still queued when the count is reached.
			time.Sleep(50 * time.Millisecond)
			level0, _ = levelCounts(s)
		}
		if level0 >= untilLevel0 {
			return
		}
	}
}

// levelCounts returns the number of tables in level 0 and below it.
func levelCounts(s *Store) (level0, below int) {
	for _, l := range s.db.Levels() {
		if l.Level == 0 {
			level0 += l.NumTables
		} else {
			below += l.NumTables
		}
	}
	return level0, below
}

// TestCompactLoopLooksWhileAsleep fills level 0 past half the stall with
// writes that do not wake compactLoop: a sleeping loop still compacts them
// within compactIdle. Only a compaction moves tables below level 0.
func TestCompactLoopLooksWhileAsleep(t *testing.T) {
	old := compactIdle
	compactIdle = 100 * time.Millisecond
	t.Cleanup(func() { compactIdle = old })
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeAround(t, s, 200, 0) // about 20 MiB: five memtables
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, below := levelCounts(s); below > 0 && !s.stallNear() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("level 0 was not compacted without a write to wake the loop:\n%s", s.db.LevelsToString())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCompactLoopIdleLeavesFewTables leaves three level-0 tables, a
// compaction due (badger's Flatten would run it) but short of half the
// stall, without waking the loop: its looks leave them for the next write,
// so an idle daemon does no work.
func TestCompactLoopIdleLeavesFewTables(t *testing.T) {
	old := compactIdle
	compactIdle = 50 * time.Millisecond
	t.Cleanup(func() { compactIdle = old })
	// A memtable still queued for its flush when writing stops can make it
	// four tables, which a look rightly compacts: then try again afresh.
	for try := 1; ; try++ {
		s, err := Open(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		writeAround(t, s, 1000, 3)
		level0, below := levelCounts(s)
		if level0 != 3 || below != 0 {
			s.Close()
			if try == 5 {
				t.Fatalf("setup: no try left level 0 with exactly 3 tables")
			}
			continue
		}
		late := false // a flush landed after all: four tables, rightly compacted
		for end := time.Now().Add(10 * compactIdle); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
			if level0, _ = levelCounts(s); level0 > 3 {
				late = true
			}
		}
		level0, below = levelCounts(s)
		levels := s.db.LevelsToString()
		s.Close()
		if late && try < 5 {
			continue
		}
		if below != 0 || level0 != 3 {
			t.Fatalf("a sleeping loop compacted or changed level 0 (was 3 tables, level0Stall %d):\n%s", level0Stall, levels)
		}
		return
	}
}
