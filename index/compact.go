package index

import (
	"time"
)

// Badger's own compactors poll every 50 ms whether or not anything was
// written, which is measurable idle CPU for a background daemon (about 0.4
// CPU seconds a minute on the reference machine). The store opens badger
// without them and runs compactLoop instead: it sleeps until a write
// commits, then looks at the LSM tree every compactPoll while writes go on
// and for a few rounds after (a memtable reaches level 0 when it is flushed,
// after the write that filled it), and compacts when badger would. While it
// sleeps it still looks every compactIdle, so that a write that did not
// signal (or a stall nobody foresaw) waits for that long at most, not for
// the next write. A look compacts only when level 0 is halfway to the
// stall. After a failed compaction (a full disk) only a write
// makes it try again, so that an idle daemon does not retry and warn every
// compactIdle.

const (
	compactPoll = 200 * time.Millisecond
	// compactQuiet is how many polls without a write end a busy period.
	compactQuiet = 5
	// level0Tables is badger's NumLevelZeroTables for the store: the number
	// of level-0 tables that makes a compaction due. Writes stall at
	// level0Stall tables until one has run.
	level0Tables = 2
	level0Stall  = 8
)

// compactIdle is how often a sleeping compactLoop looks anyway (a variable
// for tests). A look reads the levels' table counts: microseconds.
var compactIdle = 30 * time.Second

// wrote tells compactLoop that a write committed. It never blocks.
func (s *Store) wrote() {
	select {
	case s.writes <- struct{}{}:
	default:
	}
}

func (s *Store) compactLoop() {
	defer close(s.compactDone)
	idle := time.NewTicker(compactIdle)
	defer idle.Stop()
	failed := false // the last compaction failed: idle looks wait for a write
	for {
		select {
		case <-s.quit:
			return
		case <-s.writes:
			failed = false
		case <-idle.C:
			if failed || !s.stallNear() {
				continue
			}
		}
		for quiet := 0; quiet < compactQuiet; {
			select {
			case <-s.quit:
				return
			case <-time.After(compactPoll):
			}
			select {
			case <-s.writes:
				quiet = 0
			default:
				quiet++
			}
			if s.compactionDue() {
				failed = !s.compact()
			}
		}
	}
}

// compactionDue is badger's own test: enough level-0 tables, or a level
// over its target size.
func (s *Store) compactionDue() bool {
	if s.brokenErr() != nil {
		return false
	}
	for _, l := range s.db.Levels() {
		if (l.Level == 0 && l.NumTables >= level0Tables) || l.Score > 1 {
			return true
		}
	}
	return false
}

// stallNear reports level 0 halfway to the stall: what a sleeping loop's
// look compacts. Less waits for the next write, as it always did, so that
// the tables a burst leaves cost no work while the daemon idles.
func (s *Store) stallNear() bool {
	for _, l := range s.db.Levels() {
		if l.Level == 0 && l.NumTables >= level0Stall/2 {
			return true
		}
	}
	return false
}

// compact moves every table into the last level (badger's Flatten). The
// index of a device is small (a few hundred bytes a file), and a flat tree
// also makes every read a single-level lookup.
func (s *Store) compact() bool {
	// Flatten writes tables: not on a full disk (a write into one of
	// their memory maps there is a SIGBUS), nor through a broken store.
	if err := s.room(); err != nil {
		return false
	}
	if err := s.db.Flatten(1); err != nil {
		s.log.Warn("index compaction failed; it is tried again after the next write", "err", err)
		return false
	}
	return true
}
