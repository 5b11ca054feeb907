package peer

import (
	"os"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestMeter(t *testing.T) {
	var m meter
	t0 := time.Unix(1_000_000, 0)
	if r := m.rate(t0); r != 0 {
		t.Errorf("rate of a new meter = %d", r)
	}
	for i := range meterSpan {
		m.add(t0.Add(time.Duration(i)*time.Second), 1000)
	}
	if r := m.rate(t0.Add((meterSpan - 1) * time.Second)); r != 1000 {
		t.Errorf("rate after %d s of 1000 B/s = %d, want 1000", meterSpan, r)
	}
	if r := m.rate(t0.Add((2*meterSpan + 3) * time.Second)); r != 0 {
		t.Errorf("rate long after the last bytes = %d, want 0", r)
	}
	m.add(t0.Add(100*time.Second), 500) // reuses a bucket of an old second
	if r := m.rate(t0.Add(100 * time.Second)); r != 100 {
		t.Errorf("rate after 500 B in one second = %d, want 100 (over %d s)", r, meterSpan)
	}
}

// TestSendRateReported: the device a peer pulls from says in its status
// what it sends (it said 0 for ever).
func TestSendRateReported(t *testing.T) {
	n := newTestNet(t)
	a, b := n.addDevice("alpha"), n.addDevice("bravo")
	a.start(b)
	if err := b.startWith(func(o *Options) { o.RecvRate = rate.NewLimiter(4<<20, 1<<20) }, a); err != nil {
		t.Fatal(err)
	}
	a.write("big.bin", randBytes(3, 16<<20))
	a.rescan()
	var sent int64
	waitFor(t, "alpha to report what it sends", converge, func() bool {
		for _, f := range a.eng.Status().Folders {
			sent = max(sent, f.SendRate)
		}
		return sent > 0
	})
	waitFor(t, "big.bin on bravo", converge, func() bool {
		fi, err := os.Stat(b.root + "/big.bin")
		return err == nil && fi.Size() == 16<<20
	})
}
