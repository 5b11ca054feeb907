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
//
// With adapt (the daemon set the soft limit itself: no GOMEMLIMIT), it
// also moves the limit with the live heap (softLimit).
func trimMemory(ctx context.Context, adapt bool) error {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	read := func(i int) uint64 {
		metrics.Read(s)
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	trimmed := read(0)
	last := trimmed
	limit := int64(memoryLimit)
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if adapt {
			if l := softLimit(read(1)); l != limit {
				debug.SetMemoryLimit(l)
				limit = l
			}
		}
		now := read(0)
		if trimDue(trimmed, last, now) {
			debug.FreeOSMemory()
			debug.FreeOSMemory()
			trimmed = read(0)
			now = trimmed
		}
		last = now
	}
}

// softLimit is the soft memory limit for a live heap of live bytes: at
// least memoryLimit, and room for half as much garbage again as is live
// (and 16 MiB). A fixed 80 MiB made the collector run back to back once
// the live heap neared it: a first sync of 200,000 files of 1 KiB, with
// 90-160 MB live on the receiver (the pull pass's jobs, badger's tables),
// collected ten times a second and spent 30 % of the receiver's CPU on it
// (a CPU profile: 50 of 167 CPU-s). Room for as much garbage as is live
// (GOGC's own pace) took its peak RSS to 765 MB in the same sync.
func softLimit(live uint64) int64 {
	return max(int64(memoryLimit), int64(live+live/2)+16<<20)
}

// trimDue reports whether to trim, given the allocation counter at the last
// trim, at the last look and now: a burst since the trim, and quiet since
// the last look.
func trimDue(trimmed, last, now uint64) bool {
	return now-last < trimQuiet && now-trimmed >= trimBusy
}
