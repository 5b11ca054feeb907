package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// Source says where an address came from.
type Source string

const (
	// SourceStatic addresses come from the config (`syncd peer add --addr`)
	// and never expire.
	SourceStatic Source = "static"
	// SourceMDNS addresses were seen in an mDNS answer and expire when not
	// seen again for Options.Expiry.
	SourceMDNS Source = "mdns"
	// SourceVerified addresses are where the device proved who it is: a
	// dial there was answered by it over TLS, or it connected from that
	// IP announcing that port. They are tried before mDNS ones, expire
	// after VerifiedExpiry, and mDNS answers (which anyone on the LAN can
	// forge, under any device ID) never push them out.
	SourceVerified Source = "verified"
)

// VerifiedExpiry is how long a verified address is kept without being
// verified again: long, since a device that was connected for hours is
// most likely still there when it comes back.
const VerifiedExpiry = 24 * time.Hour

// Address is one place where a device may be reached. It is only a hint: the
// TLS handshake proves who answers.
type Address struct {
	// Addr is host:port. For static addresses the host may be a DNS name,
	// resolved at dial time; for mDNS addresses it is an IP literal.
	Addr     string
	Source   Source
	LastSeen time.Time // zero for static addresses
}

// Limits that keep a hostile LAN from growing the book without bound.
const (
	// MaxMDNSDevices is the number of devices the book keeps mDNS addresses
	// for; beyond it the device seen least recently is dropped.
	MaxMDNSDevices = 1024
	// MaxAddrs is the number of addresses kept per device and source; beyond
	// it the oldest mDNS address is dropped and further static ones are
	// ignored.
	MaxAddrs = 16
	// maxAddrLen bounds the length of one address string.
	maxAddrLen = 300
)

// ErrBadAddr is wrapped by every address validation error.
var ErrBadAddr = errors.New("invalid address")

// CheckAddr reports whether s is a usable host:port: a non-empty host (an IP
// literal, or a DNS name unless ipOnly) and a port in 1-65535. The CLI calls
// it on `--addr` before storing the address.
func CheckAddr(s string, ipOnly bool) error {
	if len(s) > maxAddrLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadAddr, len(s), maxAddrLen)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%w %q: want HOST:PORT (%v)", ErrBadAddr, s, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w %q: port must be 1-65535", ErrBadAddr, s)
	}
	if host == "" {
		return fmt.Errorf("%w %q: empty host", ErrBadAddr, s)
	}
	if ip := net.ParseIP(hostWithoutZone(host)); ip != nil {
		if ip.IsUnspecified() || ip.IsMulticast() || ip.Equal(net.IPv4bcast) {
			return fmt.Errorf("%w %q: not a unicast address", ErrBadAddr, s)
		}
		return nil
	}
	if ipOnly {
		return fmt.Errorf("%w %q: host is not an IP address", ErrBadAddr, s)
	}
	if !validHostname(host) {
		return fmt.Errorf("%w %q: host is neither an IP address nor a DNS name", ErrBadAddr, s)
	}
	return nil
}

func hostWithoutZone(h string) string {
	for i := 0; i < len(h); i++ {
		if h[i] == '%' {
			return h[:i]
		}
	}
	return h
}

// validHostname accepts letters, digits, '-', '_' and '.' in labels of 1-63
// bytes, 253 bytes in all.
func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '.':
			if label == 0 && i != len(h)-1 {
				return false
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return true
}

// Options configure a Book. The zero value is usable.
type Options struct {
	// Logger receives debug lines about ignored addresses. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Expiry is how long an mDNS address lives without being seen again.
	// Default: 5 minutes (browses run every 30 s, answers carry a 120 s TTL).
	Expiry time.Duration
	// Keep, if set, names the devices whose mDNS addresses a full book
	// never evicts (the pinned peers): a flood of made-up devices on the
	// LAN cannot push them out. Default: none.
	Keep func(deviceid.ID) bool
}

// DefaultExpiry is the default lifetime of an mDNS address.
const DefaultExpiry = 5 * time.Minute

// Book is the address book: device ID -> where it was last seen. It is safe
// for concurrent use.
type Book struct {
	log    *slog.Logger
	now    func() time.Time
	expiry time.Duration
	keep   func(deviceid.ID) bool

	mu      sync.Mutex
	devices map[deviceid.ID]*entry // guarded by mu
	nMDNS   int                    // devices with mDNS addresses; guarded by mu
	subs    map[*subscriber]bool   // guarded by mu
}

type entry struct {
	static   []string             // in the order given
	mdns     map[string]time.Time // addr -> last seen
	verified map[string]time.Time // addr -> last verified
}

// NewBook returns an empty book.
func NewBook(o Options) *Book {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Expiry <= 0 {
		o.Expiry = DefaultExpiry
	}
	if o.Keep == nil {
		o.Keep = func(deviceid.ID) bool { return false }
	}
	return &Book{
		log:     o.Logger,
		now:     o.Now,
		expiry:  o.Expiry,
		keep:    o.Keep,
		devices: make(map[deviceid.ID]*entry),
		subs:    make(map[*subscriber]bool),
	}
}

// SetStatic replaces the static addresses of id. Invalid addresses are
// skipped (see CheckAddr), duplicates are removed, at most MaxAddrs are kept.
// An empty list removes the static addresses.
func (b *Book) SetStatic(id deviceid.ID, addrs []string) {
	var clean []string
	for _, a := range addrs {
		if err := CheckAddr(a, false); err != nil {
			b.log.Warn("discovery: ignoring static address", "device", id.Short(), "err", err)
			continue
		}
		if slices.Contains(clean, a) {
			continue
		}
		if len(clean) == MaxAddrs {
			b.log.Warn("discovery: too many static addresses, ignoring the rest", "device", id.Short(), "max", MaxAddrs)
			break
		}
		clean = append(clean, a)
	}
	b.mu.Lock()
	e := b.devices[id]
	changed := false
	switch {
	case e == nil && len(clean) > 0:
		b.devices[id] = &entry{static: clean}
		changed = true
	case e != nil && !slices.Equal(e.static, clean):
		e.static = clean
		changed = true
		b.dropIfEmptyLocked(id, e)
	}
	subs := b.subsLocked(changed)
	b.mu.Unlock()
	notify(subs, id)
}

// Remove forgets every address of id.
func (b *Book) Remove(id deviceid.ID) {
	b.mu.Lock()
	e := b.devices[id]
	if e != nil {
		if len(e.mdns) > 0 {
			b.nMDNS--
		}
		delete(b.devices, id)
	}
	subs := b.subsLocked(e != nil)
	b.mu.Unlock()
	notify(subs, id)
}

// Seen records that id was seen at addr (host:port). For SourceMDNS the host
// must be an IP literal and the address's last-seen time is refreshed; for
// SourceStatic the address is added to the static list if missing.
// Subscribers are notified only when the set of addresses changes.
func (b *Book) Seen(id deviceid.ID, addr string, src Source) {
	if id.IsZero() {
		return
	}
	if err := CheckAddr(addr, src != SourceStatic); err != nil {
		b.log.Debug("discovery: ignoring address", "device", id.Short(), "source", src, "err", err)
		return
	}
	now := b.now()
	b.mu.Lock()
	changed := false
	e := b.devices[id]
	if e == nil {
		e = &entry{}
		b.devices[id] = e
	}
	switch src {
	case SourceStatic:
		if !slices.Contains(e.static, addr) && len(e.static) < MaxAddrs {
			e.static = append(e.static, addr)
			changed = true
		}
	case SourceVerified:
		if e.verified == nil {
			e.verified = make(map[string]time.Time)
		}
		last, ok := e.verified[addr]
		if !ok || now.Sub(last) > VerifiedExpiry {
			changed = true
		}
		e.verified[addr] = now
		dropOldest(e.verified)
	case SourceMDNS:
		if len(e.mdns) == 0 {
			if b.nMDNS >= MaxMDNSDevices && !b.evictOldestLocked() && !b.keep(id) {
				// Full of kept devices: a new one waits until some expire.
				b.dropIfEmptyLocked(id, e)
				b.mu.Unlock()
				b.log.Debug("discovery: address book full, ignoring a device", "device", id.Short())
				return
			}
			b.nMDNS++
			e.mdns = make(map[string]time.Time)
		}
		last, ok := e.mdns[addr]
		if !ok || now.Sub(last) > b.expiry {
			changed = true
		}
		e.mdns[addr] = now
		dropOldest(e.mdns)
	default:
		b.log.Debug("discovery: ignoring address of unknown source", "device", id.Short(), "source", src)
	}
	b.dropIfEmptyLocked(id, e)
	subs := b.subsLocked(changed)
	b.mu.Unlock()
	notify(subs, id)
}

// dropOldest drops the address seen least recently from m when it holds
// more than MaxAddrs.
func dropOldest(m map[string]time.Time) {
	if len(m) <= MaxAddrs {
		return
	}
	oldest := ""
	for a, t := range m {
		if oldest == "" || t.Before(m[oldest]) {
			oldest = a
		}
	}
	delete(m, oldest)
}

// evictOldestLocked drops the mDNS addresses of the device seen least
// recently among those not kept, and reports whether there was one. Caller
// holds mu.
func (b *Book) evictOldestLocked() bool {
	var victim deviceid.ID
	var victimT time.Time
	found := false
	for id, e := range b.devices {
		if len(e.mdns) == 0 || b.keep(id) {
			continue
		}
		var newest time.Time
		for _, t := range e.mdns {
			if t.After(newest) {
				newest = t
			}
		}
		if !found || newest.Before(victimT) {
			victim, victimT, found = id, newest, true
		}
	}
	if found {
		e := b.devices[victim]
		e.mdns = nil
		b.nMDNS--
		b.dropIfEmptyLocked(victim, e)
		// Nobody waits for a device the book just dropped: a flood of
		// made-up devices must not grow the queues of a busy reader.
		for s := range b.subs {
			s.forget(victim)
		}
		b.log.Debug("discovery: address book full, dropped a device", "device", victim.Short())
	}
	return found
}

// dropIfEmptyLocked removes e when it holds no address. Caller holds mu.
func (b *Book) dropIfEmptyLocked(id deviceid.ID, e *entry) {
	if len(e.static) == 0 && len(e.mdns) == 0 && len(e.verified) == 0 {
		delete(b.devices, id)
	}
}

// Lookup returns the unexpired addresses of id: static ones first in their
// configured order, then verified ones, most recently verified first, then
// the other mDNS ones, most recently seen first. Nil when none.
func (b *Book) Lookup(id deviceid.ID) []Address {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.devices[id]
	if e == nil {
		return nil
	}
	var out []Address
	for _, a := range e.static {
		out = append(out, Address{Addr: a, Source: SourceStatic})
	}
	start := len(out)
	for a, t := range e.verified {
		if now.Sub(t) <= VerifiedExpiry && !slices.Contains(e.static, a) {
			out = append(out, Address{Addr: a, Source: SourceVerified, LastSeen: t})
		}
	}
	slices.SortFunc(out[start:], newestFirst)
	start = len(out)
	for a, t := range e.mdns {
		_, verified := e.verified[a]
		if now.Sub(t) > b.expiry || verified && now.Sub(e.verified[a]) <= VerifiedExpiry {
			continue
		}
		out = append(out, Address{Addr: a, Source: SourceMDNS, LastSeen: t})
	}
	slices.SortFunc(out[start:], newestFirst)
	return out
}

// newestFirst orders addresses by LastSeen, newest first, then by address.
func newestFirst(x, y Address) int {
	if c := y.LastSeen.Compare(x.LastSeen); c != 0 {
		return c
	}
	return strings.Compare(x.Addr, y.Addr)
}

// Devices returns the IDs that currently have at least one unexpired address,
// in no particular order.
func (b *Book) Devices() []deviceid.ID {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []deviceid.ID
	for id, e := range b.devices {
		live := len(e.static) > 0
		for _, t := range e.verified {
			if now.Sub(t) <= VerifiedExpiry {
				live = true
				break
			}
		}
		for _, t := range e.mdns {
			if now.Sub(t) <= b.expiry {
				live = true
				break
			}
		}
		if live {
			ids = append(ids, id)
		}
	}
	return ids
}

// Expire drops the mDNS addresses not seen for longer than Options.Expiry
// and the verified ones not verified for VerifiedExpiry, and notifies
// subscribers of the devices that lost one. Lookup already hides
// them; MDNS.Run calls Expire periodically.
func (b *Book) Expire() {
	now := b.now()
	b.mu.Lock()
	var changed []deviceid.ID
	for id, e := range b.devices {
		had, hadVerified := len(e.mdns), len(e.verified)
		for a, t := range e.mdns {
			if now.Sub(t) > b.expiry {
				delete(e.mdns, a)
			}
		}
		for a, t := range e.verified {
			if now.Sub(t) > VerifiedExpiry {
				delete(e.verified, a)
			}
		}
		if len(e.mdns) == had && len(e.verified) == hadVerified {
			continue
		}
		changed = append(changed, id)
		if len(e.mdns) == 0 && had > 0 {
			e.mdns = nil
			b.nMDNS--
		}
		b.dropIfEmptyLocked(id, e)
	}
	subs := b.subsLocked(len(changed) > 0)
	b.mu.Unlock()
	for _, id := range changed {
		notify(subs, id)
	}
}

// Subscribe returns a channel that receives the ID of a device whenever its
// addresses change, and a function that unsubscribes and closes the channel.
// Notifications never block the book: while the reader is busy, repeated
// changes of one device are coalesced into one pending ID. Call Lookup to
// see the new addresses.
func (b *Book) Subscribe() (<-chan deviceid.ID, func()) {
	s := &subscriber{
		pending: make(map[deviceid.ID]bool),
		wake:    make(chan struct{}, 1),
		out:     make(chan deviceid.ID),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	b.mu.Lock()
	b.subs[s] = true
	b.mu.Unlock()
	go s.run()
	var once sync.Once
	return s.out, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
			close(s.done)
			<-s.exited
			close(s.out)
		})
	}
}

// subsLocked returns a snapshot of the subscribers when changed. Caller holds
// mu.
func (b *Book) subsLocked(changed bool) []*subscriber {
	if !changed || len(b.subs) == 0 {
		return nil
	}
	subs := make([]*subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	return subs
}

func notify(subs []*subscriber, id deviceid.ID) {
	for _, s := range subs {
		s.add(id)
	}
}

// subscriber queues changed IDs (a set, in arrival order) and hands them to
// the reader from its own goroutine.
type subscriber struct {
	mu      sync.Mutex
	pending map[deviceid.ID]bool // guarded by mu
	order   []deviceid.ID        // guarded by mu; the keys of pending in arrival order

	wake   chan struct{} // capacity 1
	out    chan deviceid.ID
	done   chan struct{} // closed by unsubscribe
	exited chan struct{} // closed when run returns
}

func (s *subscriber) add(id deviceid.ID) {
	s.mu.Lock()
	if !s.pending[id] {
		s.pending[id] = true
		s.order = append(s.order, id)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// forget drops id from the queue.
func (s *subscriber) forget(id deviceid.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[id] {
		delete(s.pending, id)
		s.order = slices.DeleteFunc(s.order, func(x deviceid.ID) bool { return x == id })
	}
}

func (s *subscriber) next() (deviceid.ID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return deviceid.ID{}, false
	}
	id := s.order[0]
	s.order = s.order[1:]
	delete(s.pending, id)
	return id, true
}

func (s *subscriber) run() {
	defer close(s.exited)
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			id, ok := s.next()
			if !ok {
				break
			}
			select {
			case s.out <- id:
			case <-s.done:
				return
			}
		}
	}
}
