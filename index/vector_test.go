package index

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

func TestVectorCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b Vector
		want Ordering
	}{
		{"empty", nil, nil, Equal},
		{"same", Vector{{1, 2}, {3, 4}}, Vector{{1, 2}, {3, 4}}, Equal},
		{"greater", Vector{{1, 3}}, Vector{{1, 2}}, Greater},
		{"greater extra", Vector{{1, 2}, {2, 1}}, Vector{{1, 2}}, Greater},
		{"lesser", nil, Vector{{5, 1}}, Lesser},
		{"lesser mid", Vector{{1, 1}, {9, 1}}, Vector{{1, 1}, {5, 1}, {9, 1}}, Lesser},
		{"concurrent", Vector{{1, 2}}, Vector{{2, 1}}, Concurrent},
		{"concurrent values", Vector{{1, 2}, {2, 1}}, Vector{{1, 1}, {2, 2}}, Concurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%v.Compare(%v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// fixedClock sets Update's clock to ms milliseconds for the test.
func fixedClock(t *testing.T, ms int64) {
	old := clockNow
	clockNow = func() time.Time { return time.UnixMilli(ms) }
	t.Cleanup(func() { clockNow = old })
}

// TestVectorUpdateClock: a new counter is above both the vector's counters
// and the clock, so a device that lost its records starts above every
// counter it gave before; a clock before 1970 counts as 0.
func TestVectorUpdateClock(t *testing.T) {
	v := Vector{{1, 5}, {3, 2}}
	for _, c := range []struct {
		clock int64
		want  Vector
	}{
		{1000, Vector{{1, 5}, {3, 1001}}},
		{4, Vector{{1, 5}, {3, 6}}},
		{-50, Vector{{1, 5}, {3, 6}}},
	} {
		fixedClock(t, c.clock)
		if got := v.Update(3); !cmp.Equal(got, c.want) {
			t.Errorf("Update at clock %d = %v, want %v", c.clock, got, c.want)
		}
	}
}

func TestVectorUpdateMerge(t *testing.T) {
	fixedClock(t, 0)
	v := Vector{{1, 5}, {3, 2}}
	tests := []struct {
		name string
		got  Vector
		want Vector
	}{
		{"update existing", v.Update(3), Vector{{1, 5}, {3, 6}}},
		{"update new middle", v.Update(2), Vector{{1, 5}, {2, 6}, {3, 2}}},
		{"update new first", v.Update(0), Vector{{0, 6}, {1, 5}, {3, 2}}},
		{"update new last", v.Update(9), Vector{{1, 5}, {3, 2}, {9, 6}}},
		{"update empty", Vector(nil).Update(4), Vector{{4, 1}}},
		{"merge", v.Merge(Vector{{2, 1}, {3, 7}}), Vector{{1, 5}, {2, 1}, {3, 7}}},
		{"merge empty", Vector(nil).Merge(v), v},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, tt.got); d != "" {
				t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
			}
		})
	}
	if d := cmp.Diff(Vector{{1, 5}, {3, 2}}, v); d != "" {
		t.Errorf("receiver modified: %v", v)
	}
}

func genVector() *rapid.Generator[Vector] {
	return rapid.Custom(func(t *rapid.T) Vector {
		m := rapid.MapOfN(rapid.Uint64Range(0, 6), rapid.Uint64Range(1, 5), 0, 5).Draw(t, "m")
		var v Vector
		for d := uint64(0); d <= 6; d++ {
			if x, ok := m[d]; ok {
				v = append(v, Counter{d, x})
			}
		}
		return v
	})
}

func TestVectorProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genVector().Draw(t, "a"), genVector().Draw(t, "b")
		dev := rapid.Uint64Range(0, 7).Draw(t, "dev")
		m := a.Merge(b)
		if o := m.Compare(a); o != Greater && o != Equal {
			t.Fatalf("Merge(%v,%v).Compare(a) = %v", a, b, o)
		}
		if o := m.Compare(b); o != Greater && o != Equal {
			t.Fatalf("Merge(%v,%v).Compare(b) = %v", a, b, o)
		}
		u := m.Update(dev)
		if o := u.Compare(a); o != Greater {
			t.Fatalf("Update.Compare(a) = %v, want Greater", o)
		}
		r := Record{Path: "x", Kind: Dir, Version: u}
		if err := r.Validate(); err != nil {
			t.Fatalf("updated vector invalid: %v", err)
		}
		want := map[Ordering]Ordering{Equal: Equal, Greater: Lesser, Lesser: Greater, Concurrent: Concurrent}
		if a.Compare(b) != want[b.Compare(a)] {
			t.Fatalf("Compare not antisymmetric: %v vs %v", a, b)
		}
	})
}
