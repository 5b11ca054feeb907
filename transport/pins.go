package transport

import (
	"sync"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// Pins is the set of device IDs this device accepts as peers. It is safe for
// concurrent use; servers and clients consult it on every handshake, so
// changes apply to the next connection without restarting a listener.
// Established connections are not torn down by Remove.
type Pins struct {
	mu  sync.RWMutex
	ids map[deviceid.ID]struct{} // guarded by mu
}

// NewPins returns a set holding ids (zero IDs are ignored).
func NewPins(ids ...deviceid.ID) *Pins {
	p := &Pins{ids: make(map[deviceid.ID]struct{}, len(ids))}
	p.Set(ids)
	return p
}

// Add pins id. The zero ID is never pinned.
func (p *Pins) Add(id deviceid.ID) {
	if id.IsZero() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ids == nil {
		p.ids = make(map[deviceid.ID]struct{})
	}
	p.ids[id] = struct{}{}
}

// Remove unpins id.
func (p *Pins) Remove(id deviceid.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.ids, id)
}

// Has reports whether id is pinned. A nil *Pins pins nothing.
func (p *Pins) Has(id deviceid.ID) bool {
	if p == nil || id.IsZero() {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.ids[id]
	return ok
}

// Set replaces the whole set with ids.
func (p *Pins) Set(ids []deviceid.ID) {
	m := make(map[deviceid.ID]struct{}, len(ids))
	for _, id := range ids {
		if !id.IsZero() {
			m[id] = struct{}{}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = m
}

// List returns the pinned IDs in no particular order.
func (p *Pins) List() []deviceid.ID {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]deviceid.ID, 0, len(p.ids))
	for id := range p.ids {
		out = append(out, id)
	}
	return out
}
