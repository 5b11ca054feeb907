package discovery

import (
	"strings"
	"testing"
	"time"
)

// TestNetnsLinkLocalWithZone: MDNS announces every address of the
// interface, the IPv6 link-local one included, and browses over IPv4
// when the interface has IPv4. hashicorp/mdns takes the zone of a
// link-local AAAA from the packet's source address, which for an IPv4
// packet has none; an address without it cannot be dialled (EINVAL), and
// was tried in vain on every dial. The book now holds it with the zone of
// the interface the browse ran on.
//
// Runs only inside network namespaces made by newLAN (netns_test.go).
func TestNetnsLinkLocalWithZone(t *testing.T) {
	l := newLAN(t, 2)
	a, b := testID(3301), testID(3302)
	pa := l.startDaemon(0, a, 22001)
	pb := l.startDaemon(1, b, 22002)
	f := waitFound(t, pb, a, l.ips[0]+":22001", 20*time.Second)
	zoned := false
	for _, ad := range f.addrs {
		if strings.HasPrefix(strings.ToLower(ad), "[fe80:") && strings.Contains(ad, "%") {
			zoned = true
		}
		if strings.HasPrefix(strings.ToLower(ad), "[fe80:") && !strings.Contains(ad, "%") {
			t.Errorf("the book of %s holds %s for %s (all: %v): a link-local IPv6 address without a zone, which cannot be dialled",
				b.Short(), ad, a.Short(), f.addrs)
		}
	}
	if !zoned {
		t.Errorf("the book of %s holds no link-local address with a zone for %s: %v", b.Short(), a.Short(), f.addrs)
	}
	noErrors(t, pa, pb)
}
