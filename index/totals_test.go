package index

import (
	"math/rand/v2"
	"strings"
	"testing"
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
	if _, ok, err := s.LocalTotals("f", mark, false); ok || err != nil {
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
			got, ok, err := s.LocalTotals("f", mark, true)
			if err != nil || !ok || got != walked("f") {
				t.Fatalf("first load = %+v, %v, %v; want %+v", got, ok, err, walked("f"))
			}
		case step%97 == 96:
			if err := s.ForgetLocal("f"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := s.LocalTotals("f", mark, false); ok {
				t.Fatalf("step %d: totals kept after ForgetLocal", step)
			}
			if got, _, err := s.LocalTotals("f", mark, true); err != nil || got != (Totals{}) {
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
		if got, ok, err := s.LocalTotals("f", mark, false); step >= 40 && (err != nil || !ok || got != walked("f")) {
			t.Fatalf("step %d: totals = %+v, %v, %v; a count of the records gives %+v", step, got, ok, err, walked("f"))
		}
	}
	if _, ok, _ := s.LocalTotals("g", mark, false); ok {
		t.Errorf("folder g has totals it never loaded")
	}
}
