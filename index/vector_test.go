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

// TestVectorLimit: a vector from a peer with MaxCounters made-up counters
// still takes an update here (the result is a valid version, above the
// peer's in the device's own counter), and merging two such vectors stays
// within the bound. A vector within MaxPeerCounters (what a peer may
// send) is dominated by its update.
func TestVectorLimit(t *testing.T) {
	vec := func(base uint64, n int) Vector {
		v := make(Vector, n)
		for i := range v {
			v[i] = Counter{Device: base + uint64(i)*2, Value: 5 + uint64(i)}
		}
		return v
	}
	const self = 1 // between the made-up devices 0, 2, 4, ...
	peer := vec(0, MaxCounters)
	got := peer.Update(self)
	if len(got) != MaxCounters || got.Counter(self) <= peer.Top() {
		t.Errorf("Update of a full vector: %d counters, own counter %d; want %d, above %d",
			len(got), got.Counter(self), MaxCounters, peer.Top())
	}
	r := Record{Path: "d", Kind: Dir, Version: got, Sequence: 1}
	if err := r.Validate(); err != nil {
		t.Errorf("a record with the updated version: %v", err)
	}
	if again := got.Update(self); again.Compare(got) != Greater {
		t.Errorf("a second update = %v against the first, want greater", again.Compare(got))
	}
	m := vec(0, MaxCounters).Merge(vec(1, MaxCounters))
	if len(m) != MaxCounters {
		t.Errorf("merge of two full disjoint vectors has %d counters, want %d", len(m), MaxCounters)
	}
	if m.Counter(2*(MaxCounters-1)) == 0 || m.Counter(0) != 0 {
		t.Errorf("merge kept the wrong counters: largest %d, smallest %d", m.Counter(2*(MaxCounters-1)), m.Counter(0))
	}
	// The most a peer may send, merged with a local version and updated,
	// still fits: the update dominates both.
	local := vec(1, MaxPeerCounters).Update(self)
	up := vec(0, MaxPeerCounters).Merge(local).Update(self)
	if up.Compare(local) != Greater || up.Compare(vec(0, MaxPeerCounters)) != Greater {
		t.Errorf("update of a merge of two peer-sized vectors: %v and %v against them, want greater",
			up.Compare(local), up.Compare(vec(0, MaxPeerCounters)))
	}
}
