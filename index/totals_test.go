package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLocalTotalsFollowWrites: once loaded, a folder's totals follow every
// PutLocal (new files, edits, deletions, kinds changing, the same path
// twice in one call) and start over after ForgetLocal; at each step they
// equal a fresh count of the records, and other folders are unaffected.
func TestLocalTotalsFollowWrites(t *testing.T) {
	s := openTest(t, "")
	mark := func(p string) bool { return strings.HasSuffix(p, ".conflict") }
	walked := func(folder string) Totals {
		t.Helper()
		var want Totals
		err := s.WalkLocal(folder, func(r Record) error {
			if !r.Deleted && r.Kind == File {
				want.Files++
				want.Bytes += r.Size
				if mark(r.Path) {
					want.Marked++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return want
	}
	if _, ok, err := s.LocalTotals(context.Background(), "f", mark, false); ok || err != nil {
		t.Fatalf("LocalTotals before a load = %v, %v; want not loaded", ok, err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"a", "b.conflict", "d/c", "d/e.conflict", "x"}
	record := func(p string) Record {
		switch rng.IntN(5) {
		case 0:
			return Record{Path: p, Kind: Dir, Mode: 0o755, Version: Vector{{Device: 1, Value: 1}}}
		case 1:
			return Record{Path: p, Kind: File, Deleted: true, Version: Vector{{Device: 1, Value: 2}}}
		case 2:
			return Record{Path: p, Kind: Symlink, Target: "a", Version: Vector{{Device: 1, Value: 1}}}
		}
		return fileRecord(p, rng.Int64N(3*MaxBlockSize), MaxBlockSize)
	}
	for step := range 300 {
		folder := "f"
		if step%7 == 0 {
			folder = "g"
		}
		switch {
		case step == 40:
			// Loaded midway, over records already there.
			got, ok, err := s.LocalTotals(context.Background(), "f", mark, true)
			if err != nil || !ok || got != walked("f") {
				t.Fatalf("first load = %+v, %v, %v; want %+v", got, ok, err, walked("f"))
			}
		case step%97 == 96:
			if err := s.ForgetLocal("f"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := s.LocalTotals(context.Background(), "f", mark, false); ok {
				t.Fatalf("step %d: totals kept after ForgetLocal", step)
			}
			if got, _, err := s.LocalTotals(context.Background(), "f", mark, true); err != nil || got != (Totals{}) {
				t.Fatalf("step %d: totals after ForgetLocal = %+v, %v; want none", step, got, err)
			}
		default:
			var recs []Record
			for range 1 + rng.IntN(3) {
				recs = append(recs, record(names[rng.IntN(len(names))]))
			}
			if _, err := s.PutLocal(folder, recs...); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		if got, ok, err := s.LocalTotals(context.Background(), "f", mark, false); step >= 40 && (err != nil || !ok || got != walked("f")) {
			t.Fatalf("step %d: totals = %+v, %v, %v; a count of the records gives %+v", step, got, ok, err, walked("f"))
		}
	}
	if _, ok, _ := s.LocalTotals(context.Background(), "g", mark, false); ok {
		t.Errorf("folder g has totals it never loaded")
	}
}

// TestLocalTotalsLoadWhileWriting: the first load counts a snapshot while
// writes go on: reads of other folders' totals and writes to the folder
// itself do not wait for it, and each write made meanwhile is counted
// once. A ForgetLocal or an ended context during the load makes it count
// nothing, and a later load counts what is there.
func TestLocalTotalsLoadWhileWriting(t *testing.T) {
	s := openTest(t, "")
	put := func(folder string, recs ...Record) {
		t.Helper()
		if _, err := s.PutLocal(folder, recs...); err != nil {
			t.Fatal(err)
		}
	}
	var recs []Record
	for i := range 2000 {
		recs = append(recs, fileRecord(fmt.Sprintf("d%02d/f%04d", i%20, i), int64(i), MaxBlockSize))
	}
	put("f", recs...)
	put("g", fileRecord("a", 5, MaxBlockSize))
	if _, ok, err := s.LocalTotals(context.Background(), "g", nil, true); !ok || err != nil {
		t.Fatalf("load of g = %v, %v", ok, err)
	}
	count := func() Totals {
		var want Totals
		s.WalkLocal("f", func(r Record) error {
			if !r.Deleted && r.Kind == File {
				want.Files++
				want.Bytes += r.Size
			}
			return nil
		})
		return want
	}
	// load runs a load of f whose walk stops at its first record until
	// release is closed; entered is closed when it stops there.
	load := func(ctx context.Context) (entered, release chan struct{}, done chan error, got *Totals, ok *bool) {
		entered, release, done = make(chan struct{}), make(chan struct{}), make(chan error, 1)
		got, ok = new(Totals), new(bool)
		var first atomic.Bool
		mark := func(string) bool {
			// The first call is the walk's (writes wait for the load to
			// register); the writes' own calls must not wait here.
			if first.CompareAndSwap(false, true) {
				close(entered)
				<-release
			}
			return false
		}
		go func() {
			var err error
			*got, *ok, err = s.LocalTotals(ctx, "f", mark, true)
			done <- err
		}()
		<-entered
		return
	}

	entered, release, done, got, ok := load(context.Background())
	_ = entered
	start := time.Now()
	if gt, gok, _ := s.LocalTotals(context.Background(), "g", nil, false); !gok || gt.Files != 1 {
		t.Errorf("totals of g during the load of f = %+v, %v", gt, gok)
	}
	if _, fok, _ := s.LocalTotals(context.Background(), "f", nil, false); fok {
		t.Errorf("totals of f reported before its load ended")
	}
	edit := fileRecord("d00/f0000", 12345, MaxBlockSize)
	gone := recs[1]
	gone.Deleted, gone.Blocks, gone.Size, gone.Content = true, nil, 0, Hash{}
	put("f", edit, gone, fileRecord("new", 77, MaxBlockSize))
	if took := time.Since(start); took > time.Second {
		t.Errorf("reads and writes during the load took %v: they waited for its walk", took)
	}
	close(release)
	if err := <-done; err != nil || !*ok || *got != count() {
		t.Fatalf("load with writes during it = %+v, %v, %v; a count gives %+v", *got, *ok, err, count())
	}
	put("f", fileRecord("later", 3, MaxBlockSize))
	if t2, _, _ := s.LocalTotals(context.Background(), "f", nil, false); t2 != count() {
		t.Errorf("totals after a later write = %+v, want %+v", t2, count())
	}

	// Forgotten during a load: nothing counted, then a new load.
	if err := s.ForgetLocal("f"); err != nil {
		t.Fatal(err)
	}
	put("f", recs[:10]...)
	_, release, done, _, ok = load(context.Background())
	if err := s.ForgetLocal("f"); err != nil {
		t.Fatal(err)
	}
	put("f", recs[:3]...)
	close(release)
	if err := <-done; err != nil || *ok {
		t.Errorf("load during ForgetLocal = ok %v, %v; want not ok", *ok, err)
	}
	if t2, ok2, err := s.LocalTotals(context.Background(), "f", nil, true); err != nil || !ok2 || t2 != count() {
		t.Errorf("load after ForgetLocal = %+v, %v, %v; want %+v", t2, ok2, err, count())
	}

	// An ended context: nothing counted, then a new load.
	if err := s.ForgetLocal("f"); err != nil {
		t.Fatal(err)
	}
	put("f", recs...)
	ctx, cancel := context.WithCancel(context.Background())
	_, release, done, _, ok = load(ctx)
	cancel()
	close(release)
	if err := <-done; err != nil || *ok {
		t.Errorf("load with its context ended = ok %v, %v; want not ok, no error", *ok, err)
	}
	if t2, ok2, err := s.LocalTotals(context.Background(), "f", nil, true); err != nil || !ok2 || t2 != count() {
		t.Errorf("load after a cancelled one = %+v, %v, %v; want %+v", t2, ok2, err, count())
	}
}
