package peer

import (
	"sync"
	"time"
)

// meterSpan is the window of a meter, in seconds.
const meterSpan = 5

// meter measures a byte rate over the last meterSpan seconds, in buckets
// of one second. The zero meter is ready.
type meter struct {
	mu  sync.Mutex
	sec [meterSpan]int64 // guarded by mu: the Unix second each bucket counts
	n   [meterSpan]int64 // guarded by mu
}

// add counts n bytes at now.
func (m *meter) add(now time.Time, n int64) {
	s := now.Unix()
	i := int(uint64(s) % meterSpan)
	m.mu.Lock()
	if m.sec[i] != s {
		m.sec[i], m.n[i] = s, 0
	}
	m.n[i] += n
	m.mu.Unlock()
}

// rate returns bytes per second over the meterSpan seconds before now.
func (m *meter) rate(now time.Time) int64 {
	s := now.Unix()
	var sum int64
	m.mu.Lock()
	for i := range m.sec {
		if d := s - m.sec[i]; d >= 0 && d < meterSpan {
			sum += m.n[i]
		}
	}
	m.mu.Unlock()
	return sum / meterSpan
}
