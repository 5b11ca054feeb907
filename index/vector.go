package index

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Counter is one device's entry in a version vector. Device is
// deviceid.ID.Key() of the device.
type Counter struct {
	Device uint64
	Value  uint64
}

// Vector is a version vector: counters sorted by Device, no zero Values.
// Methods never modify their receiver; they return new vectors.
type Vector []Counter

// Ordering is the result of comparing two vectors.
type Ordering int

// The orderings of two vectors.
const (
	Equal      Ordering = iota // same counters
	Greater                    // the receiver dominates (newer)
	Lesser                     // the argument dominates
	Concurrent                 // neither dominates: a conflict
)

func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Greater:
		return "greater"
	case Lesser:
		return "lesser"
	case Concurrent:
		return "concurrent"
	}
	return fmt.Sprintf("ordering(%d)", int(o))
}

// Counter returns dev's counter (0 if absent).
func (v Vector) Counter(dev uint64) uint64 {
	i, ok := slices.BinarySearchFunc(v, dev, func(c Counter, d uint64) int { return cmpU64(c.Device, d) })
	if ok {
		return v[i].Value
	}
	return 0
}

// Compare orders v against o. It tolerates unsorted input only in the sense
// that it never panics; callers should pass valid vectors.
func (v Vector) Compare(o Vector) Ordering {
	var vBig, oBig bool
	i, j := 0, 0
	for i < len(v) || j < len(o) {
		switch {
		case j >= len(o) || (i < len(v) && v[i].Device < o[j].Device):
			if v[i].Value > 0 {
				vBig = true
			}
			i++
		case i >= len(v) || o[j].Device < v[i].Device:
			if o[j].Value > 0 {
				oBig = true
			}
			j++
		default:
			if v[i].Value > o[j].Value {
				vBig = true
			} else if v[i].Value < o[j].Value {
				oBig = true
			}
			i++
			j++
		}
	}
	switch {
	case vBig && oBig:
		return Concurrent
	case vBig:
		return Greater
	case oBig:
		return Lesser
	}
	return Equal
}

// Update returns a copy of v in which dev's counter is one more than the
// largest counter of v or the clock, so that the result dominates v and
// everything v was merged from.
func (v Vector) Update(dev uint64) Vector {
	// The counter is at least the clock (milliseconds): a device whose
	// index was lost starts again above every counter it gave before, so
	// its new edits are concurrent with (not dominated by) what it made
	// then. With seconds, an edit made in the same second as the last
	// version this device gave the file before the loss got that
	// version's counter, and lost to every later version built on it.
	top := max(v.Top(), clockCounter())
	out := make(Vector, 0, len(v)+1)
	done := false
	for _, c := range v {
		if c.Device == dev {
			c.Value = top + 1
			done = true
		} else if !done && c.Device > dev {
			out = append(out, Counter{Device: dev, Value: top + 1})
			done = true
		}
		out = append(out, c)
	}
	if !done {
		out = append(out, Counter{Device: dev, Value: top + 1})
	}
	return out.limit(dev, true)
}

// limit returns v with at most MaxCounters counters: beyond that it drops
// the smallest counters (by value, then device), never keep's if
// keeping. Honest
// vectors have one counter per device that ever changed the file, far
// fewer; a peer's record with MaxCounters made-up counters would
// otherwise make every later version of that file here invalid, and its
// scan batch with it. A dropped counter can make an older version look
// concurrent (a conflict copy), never newer.
func (v Vector) limit(keep uint64, keeping bool) Vector {
	if len(v) <= MaxCounters {
		return v
	}
	order := make([]int, len(v))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmpU64(v[a].Value, v[b].Value); c != 0 {
			return c
		}
		return cmpU64(v[a].Device, v[b].Device)
	})
	drop := make(map[int]bool, len(v)-MaxCounters)
	for _, i := range order {
		if len(drop) == len(v)-MaxCounters {
			break
		}
		if !keeping || v[i].Device != keep {
			drop[i] = true
		}
	}
	out := make(Vector, 0, MaxCounters)
	for i, c := range v {
		if !drop[i] {
			out = append(out, c)
		}
	}
	return out
}

// clockCounter is the clock in milliseconds, 0 for a clock before 1970.
func clockCounter() uint64 {
	return uint64(max(clockNow().UnixMilli(), 0))
}

// clockNow is the clock of Update (a variable for tests).
var clockNow = time.Now

// MaxPeerCounter bounds the counters of a version vector that a peer may
// send. Update makes a counter one above the largest, so a counter near
// 2^64 from a peer would wrap to zero on the next edit here (an invalid
// record: every later local change in its scan batch would be lost).
// Honest counters are the clock in milliseconds (about 2^41) or one
// above a counter seen, far below this bound.
const MaxPeerCounter = 1 << 62

// MaxPeerCounters bounds the counters of a version vector that a peer may
// send: a merge of two such vectors and an update still fit in
// MaxCounters, so the result dominates both. Honest vectors have one
// counter per device that ever changed the file.
const MaxPeerCounters = MaxCounters/2 - 1

// Top returns the largest counter of v (0 for an empty vector).
func (v Vector) Top() uint64 {
	var top uint64
	for _, c := range v {
		top = max(top, c.Value)
	}
	return top
}

// Merge returns the elementwise maximum of v and o, limited to MaxCounters
// counters (see limit).
func (v Vector) Merge(o Vector) Vector {
	out := make(Vector, 0, max(len(v), len(o)))
	i, j := 0, 0
	for i < len(v) || j < len(o) {
		switch {
		case j >= len(o) || (i < len(v) && v[i].Device < o[j].Device):
			out = append(out, v[i])
			i++
		case i >= len(v) || o[j].Device < v[i].Device:
			out = append(out, o[j])
			j++
		default:
			out = append(out, Counter{Device: v[i].Device, Value: max(v[i].Value, o[j].Value)})
			i++
			j++
		}
	}
	return out.limit(0, false)
}

// String formats the vector as {dev:value, ...} with devices in hex.
func (v Vector) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, c := range v {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%016x:%d", c.Device, c.Value)
	}
	b.WriteByte('}')
	return b.String()
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
