package discovery

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncd-project/syncd/transport/deviceid"
)

// fakeClock is a settable clock for the book.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testID(n int) deviceid.ID {
	return deviceid.FromPublicKeyInfo(fmt.Appendf(nil, "device %d", n))
}

func addrs(as []Address) []string {
	var out []string
	for _, a := range as {
		out = append(out, string(a.Source)+" "+a.Addr)
	}
	return out
}

func TestBookLookupOrderAndMerge(t *testing.T) {
	clk := newFakeClock()
	b := NewBook(Options{Now: clk.Now})
	a := testID(1)

	b.Seen(a, "198.18.0.1:22000", SourceMDNS)
	clk.Advance(time.Second)
	b.SetStatic(a, []string{"nas.example:22000", "bad", "10.0.0.1:22000", "nas.example:22000"})
	b.Seen(a, "[fe80::1%eth0]:22000", SourceMDNS)
	clk.Advance(time.Second)
	b.Seen(a, "198.18.0.1:22000", SourceMDNS) // refresh: now the newest
	b.Seen(a, "not an address", SourceMDNS)
	b.Seen(a, "host.example:1", SourceMDNS) // mDNS hosts must be IPs

	got := addrs(b.Lookup(a))
	want := []string{
		"static nas.example:22000",
		"static 10.0.0.1:22000",
		"mdns 198.18.0.1:22000",
		"mdns [fe80::1%eth0]:22000",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Lookup(a) mismatch (-want +got):\n%s", diff)
	}
	if got := b.Lookup(testID(2)); got != nil {
		t.Errorf("Lookup(unknown) = %v, want nil", got)
	}

	b.SetStatic(a, nil)
	if got, want := len(b.Lookup(a)), 2; got != want {
		t.Errorf("len(Lookup(a)) after SetStatic(nil) = %d, want %d", got, want)
	}
	b.Remove(a)
	if got := b.Lookup(a); got != nil {
		t.Errorf("Lookup(a) after Remove = %v, want nil", got)
	}
}

func TestBookExpiry(t *testing.T) {
	clk := newFakeClock()
	b := NewBook(Options{Now: clk.Now, Expiry: time.Minute})
	a, c := testID(1), testID(2)
	b.SetStatic(a, []string{"10.0.0.1:1"})
	b.Seen(a, "198.18.0.1:1", SourceMDNS)
	b.Seen(c, "198.18.0.2:1", SourceMDNS)

	clk.Advance(30 * time.Second)
	b.Seen(c, "198.18.0.3:1", SourceMDNS)
	clk.Advance(31 * time.Second) // 198.18.0.1 and .2 are 61 s old

	tests := []struct {
		id   deviceid.ID
		want []string
	}{
		{a, []string{"static 10.0.0.1:1"}},
		{c, []string{"mdns 198.18.0.3:1"}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, addrs(b.Lookup(tc.id))); diff != "" {
			t.Errorf("Lookup(%s) lazily expired mismatch (-want +got):\n%s", tc.id.Short(), diff)
		}
	}
	b.Expire()
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, addrs(b.Lookup(tc.id))); diff != "" {
			t.Errorf("Lookup(%s) after Expire mismatch (-want +got):\n%s", tc.id.Short(), diff)
		}
	}

	clk.Advance(24 * time.Hour) // static addresses never expire
	b.Expire()
	if diff := cmp.Diff([]string{"static 10.0.0.1:1"}, addrs(b.Lookup(a))); diff != "" {
		t.Errorf("Lookup(a) a day later mismatch (-want +got):\n%s", diff)
	}
	if got := b.Lookup(c); got != nil {
		t.Errorf("Lookup(c) a day later = %v, want nil", got)
	}
	if got, want := len(b.Devices()), 1; got != want {
		t.Errorf("len(Devices()) = %d, want %d", got, want)
	}
}

// recv waits for one notification.
func recv(t *testing.T, ch <-chan deviceid.ID) deviceid.ID {
	t.Helper()
	select {
	case id, ok := <-ch:
		if !ok {
			t.Fatal("subscription channel closed")
		}
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10 s")
	}
	return deviceid.ID{}
}

// none checks that no notification is pending.
func none(t *testing.T, ch <-chan deviceid.ID, what string) {
	t.Helper()
	select {
	case id := <-ch:
		t.Errorf("%s: got notification for %s, want none", what, id.Short())
	case <-time.After(50 * time.Millisecond):
	}
}

func TestBookSubscribe(t *testing.T) {
	clk := newFakeClock()
	b := NewBook(Options{Now: clk.Now, Expiry: time.Minute})
	a, c := testID(1), testID(2)
	ch, unsub := b.Subscribe()
	defer unsub()

	steps := []struct {
		name string
		do   func()
		want *deviceid.ID // nil: no notification
	}{
		{"new mdns address", func() { b.Seen(a, "198.18.0.1:1", SourceMDNS) }, &a},
		{"refresh is not a change", func() { clk.Advance(time.Second); b.Seen(a, "198.18.0.1:1", SourceMDNS) }, nil},
		{"second address", func() { b.Seen(a, "198.18.0.9:1", SourceMDNS) }, &a},
		{"static set", func() { b.SetStatic(c, []string{"h:1"}) }, &c},
		{"same static again", func() { b.SetStatic(c, []string{"h:1"}) }, nil},
		{"invalid address", func() { b.Seen(c, "h", SourceMDNS) }, nil},
		{"expire", func() { clk.Advance(2 * time.Minute); b.Expire() }, &a},
		{"nothing left to expire", func() { b.Expire() }, nil},
		{"seen again after expiry", func() { b.Seen(a, "198.18.0.1:1", SourceMDNS) }, &a},
		{"remove", func() { b.Remove(c) }, &c},
		{"remove unknown", func() { b.Remove(c) }, nil},
	}
	for _, st := range steps {
		st.do()
		if st.want == nil {
			none(t, ch, st.name)
			continue
		}
		if got := recv(t, ch); got != *st.want {
			t.Errorf("%s: notification = %s, want %s", st.name, got.Short(), st.want.Short())
		}
	}
}

func TestBookSubscribeCoalescesAndUnsubscribes(t *testing.T) {
	b := NewBook(Options{})
	a, c := testID(1), testID(2)
	ch, unsub := b.Subscribe()
	// Nobody reads: the book must not block, and changes coalesce.
	for i := range 100 {
		b.Seen(a, fmt.Sprintf("198.18.0.%d:1", i%MaxAddrs+1), SourceMDNS)
		b.Seen(a, fmt.Sprintf("198.18.1.%d:1", i+1), SourceMDNS)
		b.SetStatic(c, []string{fmt.Sprintf("h%d:1", i)})
	}
	got := map[deviceid.ID]int{recv(t, ch): 1}
	got[recv(t, ch)]++
	// At most one more of a device may come (pending while the first was
	// handed over); never a long backlog.
	extra := 0
	for {
		select {
		case id := <-ch:
			got[id]++
			extra++
			if extra > 2 {
				t.Fatalf("got %d notifications for 2 devices, want them coalesced", 2+extra)
			}
			continue
		case <-time.After(50 * time.Millisecond):
		}
		break
	}
	if got[a] == 0 || got[c] == 0 {
		t.Errorf("notifications = %v, want both devices", got)
	}
	unsub()
	unsub() // idempotent
	if _, ok := <-ch; ok {
		t.Errorf("channel open after unsubscribe, want closed")
	}
	b.Seen(a, "198.18.9.9:1", SourceMDNS) // must not block or panic
}

func TestBookBounds(t *testing.T) {
	clk := newFakeClock()
	b := NewBook(Options{Now: clk.Now})
	a := testID(0)
	for i := range MaxAddrs + 5 {
		clk.Advance(time.Second)
		b.Seen(a, fmt.Sprintf("198.18.0.%d:1", i+1), SourceMDNS)
	}
	got := b.Lookup(a)
	if len(got) != MaxAddrs {
		t.Fatalf("len(Lookup) = %d, want %d", len(got), MaxAddrs)
	}
	if want := fmt.Sprintf("198.18.0.%d:1", MaxAddrs+5); got[0].Addr != want {
		t.Errorf("newest address = %s, want %s", got[0].Addr, want)
	}
	for i := range MaxMDNSDevices + 10 {
		clk.Advance(time.Millisecond)
		b.Seen(testID(i+1), "198.18.1.1:1", SourceMDNS)
	}
	if got, want := len(b.Devices()), MaxMDNSDevices; got != want {
		t.Errorf("len(Devices()) = %d, want %d", got, want)
	}
	if got := b.Lookup(a); got != nil {
		t.Errorf("Lookup(oldest device) = %v, want evicted", got)
	}
	if got := b.Lookup(testID(MaxMDNSDevices + 10)); len(got) != 1 {
		t.Errorf("Lookup(newest device) = %v, want one address", got)
	}
}

// TestBookKeepsPinned floods a book with made-up devices: the pinned
// peer, seen before all of them, keeps its address; once the book is full
// of kept devices, a new device that is not kept is ignored.
func TestBookKeepsPinned(t *testing.T) {
	clk := newFakeClock()
	pinned := testID(0)
	kept := map[deviceid.ID]bool{pinned: true}
	b := NewBook(Options{Now: clk.Now, Keep: func(id deviceid.ID) bool { return kept[id] }})
	b.Seen(pinned, "198.18.0.1:1", SourceMDNS)
	for i := range MaxMDNSDevices + 10 {
		clk.Advance(time.Millisecond)
		b.Seen(testID(i+1), "198.18.1.1:1", SourceMDNS)
	}
	if got := b.Lookup(pinned); len(got) != 1 {
		t.Fatalf("Lookup(pinned peer) = %v after a flood, want its address", got)
	}
	if got, want := len(b.Devices()), MaxMDNSDevices; got != want {
		t.Errorf("len(Devices()) = %d, want %d", got, want)
	}
	if got := b.Lookup(testID(11)); got != nil {
		t.Errorf("Lookup(oldest unpinned device) = %v, want evicted", got)
	}

	// Every device in the book kept: a stranger waits, a pinned one is in.
	for _, id := range b.Devices() {
		kept[id] = true
	}
	stranger, friend := testID(-1), testID(-2)
	kept[friend] = true
	b.Seen(stranger, "198.18.2.1:1", SourceMDNS)
	b.Seen(friend, "198.18.2.2:1", SourceMDNS)
	if got := b.Lookup(stranger); got != nil {
		t.Errorf("Lookup(stranger) = %v in a book full of pinned devices, want none", got)
	}
	if got := b.Lookup(friend); len(got) != 1 {
		t.Errorf("Lookup(pinned newcomer) = %v, want its address", got)
	}
	if got := b.Lookup(pinned); len(got) != 1 {
		t.Errorf("Lookup(pinned peer) = %v, want its address", got)
	}
}

func TestBookConcurrent(t *testing.T) {
	b := NewBook(Options{Expiry: time.Millisecond})
	ch, unsub := b.Subscribe()
	var wg sync.WaitGroup
	wg.Go(func() {
		for range ch {
		}
	})
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Go(func() {
			for i := range 500 {
				id := testID(i % 7)
				b.Seen(id, fmt.Sprintf("198.18.%d.%d:1", w, i%200+1), SourceMDNS)
				b.Lookup(id)
				if i%50 == 0 {
					b.Expire()
					b.SetStatic(id, []string{"h:1"})
					b.Remove(id)
				}
			}
		})
	}
	workers.Wait()
	unsub()
	wg.Wait()
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		in     string
		ipOnly bool
		ok     bool
	}{
		{"198.18.0.1:22000", true, true},
		{"[fe80::1%eth0]:22000", true, true},
		{"[2001:db8::1]:1", true, true},
		{"nas.local:22000", false, true},
		{"nas.local:22000", true, false},
		{"nas.local.:22000", false, true},
		{"198.18.0.1", false, false},
		{"198.18.0.1:0", false, false},
		{"198.18.0.1:65536", false, false},
		{"198.18.0.1:http", false, false},
		{":22000", false, false},
		{"0.0.0.0:22000", false, false},
		{"224.0.0.251:5353", false, false},
		{"255.255.255.255:22000", false, false},
		{"a..b:1", false, false},
		{"bad host:1", false, false},
		{string(make([]byte, 400)) + ":1", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			err := CheckAddr(tc.in, tc.ipOnly)
			if (err == nil) != tc.ok {
				t.Errorf("CheckAddr(%q, %v) = %v, want ok=%v", tc.in, tc.ipOnly, err, tc.ok)
			}
		})
	}
}

func FuzzCheckAddr(f *testing.F) {
	for _, s := range []string{"198.18.0.1:22000", "[fe80::1%eth0]:1", "nas.local:22000", "a..b:1", ":1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckAddr(s, true) == nil && CheckAddr(s, false) != nil {
			t.Errorf("CheckAddr(%q): accepted as IP-only but rejected in general", s)
		}
		b := NewBook(Options{})
		id := deviceid.ID(sha256.Sum256([]byte(s)))
		b.Seen(id, s, SourceMDNS)
		b.SetStatic(id, []string{s})
		if got := b.Lookup(id); len(got) > 0 && CheckAddr(s, false) != nil {
			t.Errorf("Lookup after Seen(%q) = %v, want rejected", s, got)
		}
	})
}

// TestBookVerifiedSurvivesForgedAnswers: anyone on the LAN can announce a
// pinned device's ID with addresses of its own. An address where the
// device proved itself over TLS is kept apart: a flood of forged mDNS
// answers neither pushes it out nor puts itself before it, and it outlives
// the mDNS expiry.
func TestBookVerifiedSurvivesForgedAnswers(t *testing.T) {
	clk := newFakeClock()
	pinned := testID(1)
	b := NewBook(Options{Now: clk.Now})
	const real = "198.18.0.2:22000"
	b.Seen(pinned, real, SourceMDNS)
	b.Seen(pinned, real, SourceVerified)
	for i := range 2 * MaxAddrs {
		clk.Advance(time.Millisecond)
		b.Seen(pinned, fmt.Sprintf("198.18.0.%d:22000", 100+i), SourceMDNS)
	}
	got := b.Lookup(pinned)
	if len(got) != MaxAddrs+1 || got[0].Addr != real || got[0].Source != SourceVerified {
		t.Fatalf("Lookup after %d forged answers = %v, want the verified %s first, then %d mDNS addresses", 2*MaxAddrs, got, real, MaxAddrs)
	}
	for _, a := range got[1:] {
		if a.Addr == real {
			t.Errorf("Lookup lists %s twice: %v", real, got)
		}
	}

	clk.Advance(DefaultExpiry + time.Second)
	b.Expire()
	if got := b.Lookup(pinned); len(got) != 1 || got[0].Addr != real {
		t.Errorf("Lookup after the mDNS expiry = %v, want only the verified %s", got, real)
	}
	if got := b.Devices(); len(got) != 1 {
		t.Errorf("Devices() = %v, want the device of the verified address", got)
	}
	clk.Advance(VerifiedExpiry)
	b.Expire()
	if got := b.Lookup(pinned); got != nil {
		t.Errorf("Lookup after VerifiedExpiry = %v, want none", got)
	}
	if got := b.Devices(); len(got) != 0 {
		t.Errorf("Devices() = %v after every address expired, want none", got)
	}
}

// TestBookSubscriberQueueBounded: while a subscriber's reader is busy, a
// flood of made-up devices queues no more IDs than the book holds
// devices: those it drops leave the queue.
func TestBookSubscriberQueueBounded(t *testing.T) {
	clk := newFakeClock()
	b := NewBook(Options{Now: clk.Now})
	_, unsubscribe := b.Subscribe() // a reader that is busy for the moment
	defer unsubscribe()
	const flood = 4 * MaxMDNSDevices
	for i := range flood {
		clk.Advance(time.Millisecond)
		b.Seen(testID(100000+i), "198.18.1.1:22000", SourceMDNS)
	}
	if n := len(b.Devices()); n > MaxMDNSDevices {
		t.Fatalf("book holds %d devices, more than MaxMDNSDevices", n)
	}
	b.mu.Lock()
	var s *subscriber
	for x := range b.subs {
		s = x
	}
	b.mu.Unlock()
	s.mu.Lock()
	pending := len(s.pending)
	s.mu.Unlock()
	// One ID may be in flight in run (handed to out); the rest are queued.
	if pending > MaxMDNSDevices+1 {
		t.Errorf("after %d made-up devices, a subscriber queues %d IDs while the book holds at most %d devices: "+
			"the notification queue is not bounded by the book", flood, pending, MaxMDNSDevices)
	}
}
