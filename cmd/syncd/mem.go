package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// trimEvery and trimQuiet drive trimMemory: how often it looks, and how
// little may be allocated in one look for the daemon to count as quiet.
const (
	trimEvery = 2 * time.Second
	trimQuiet = 256 << 10
	trimBusy  = 16 << 20 // allocated since the last trim that makes one due
)

// trimMemory gives memory back to the OS once a burst of work (a first
// scan, a pull of many files) is over. Go keeps what a burst grew: freed
// spans go back to the OS slowly, and pooled block buffers (sync.Pool) are
// only dropped after two collections, which an idle daemon rarely runs;
// that left an idle daemon at ~70 MiB RSS after syncing 10,000 files. So
// when the daemon has allocated trimBusy since the last trim and then
// allocates less than trimQuiet in a trimEvery, it collects twice (the
// second empties the pools' victim caches) and returns the free heap. The
// check itself is a metrics read every trimEvery (microseconds).
func trimMemory(ctx context.Context) error {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	read := func() uint64 {
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[0].Value.Uint64()
	}
	trimmed := read()
	last := trimmed
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := read()
		if trimDue(trimmed, last, now) {
			debug.FreeOSMemory()
			debug.FreeOSMemory()
			trimmed = read()
			now = trimmed
		}
		last = now
	}
}

// trimDue reports whether to trim, given the allocation counter at the last
// trim, at the last look and now: a burst since the trim, and quiet since
// the last look.
func trimDue(trimmed, last, now uint64) bool {
	return now-last < trimQuiet && now-trimmed >= trimBusy
}
