package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// pairRunning starts two pinned devices sharing folder "f" and waits until
// both see the other connected.
func pairRunning(t *testing.T) (a, b *testDevice) {
	t.Helper()
	a, b = newTestDevice(t, "alpha"), newTestDevice(t, "beta")
	pinEachOther(a, b)
	a.addFolder("f", t.TempDir(), b)
	b.addFolder("f", t.TempDir(), a)
	a.start()
	b.start()
	for _, d := range []*testDevice{a, b} {
		waitFor(t, 30*time.Second, d.name+" connected", func() string {
			for _, p := range d.status().Peers {
				if !p.Connected {
					return fmt.Sprintf("%s not connected (%+v)", p.Name, p.Error)
				}
			}
			return ""
		})
	}
	return a, b
}

// TestUnpinnedByPeerIsNotAnotherDevice: when alpha removes beta ('syncd
// peer remove' on alpha), alpha drops beta's connections at once, and
// beta's status says that alpha no longer accepts it (alpha refused
// beta's certificate: "remote error"), not that the device answering is
// not the alpha beta pinned (it is: its certificate checked out), which
// sent the user to compare IDs that match.
func TestUnpinnedByPeerIsNotAnotherDevice(t *testing.T) {
	a, b := pairRunning(t)
	a.mustSyncd("peer", "remove", b.id)
	var got statusIssue
	waitFor(t, 60*time.Second, "beta sees alpha refuse it", func() string {
		for _, p := range b.status().Peers {
			if p.Connected || p.Error == nil || !strings.Contains(p.Error.Message, "remote error") {
				return fmt.Sprintf("alpha: connected=%v error=%+v", p.Connected, p.Error)
			}
			got = *p.Error
		}
		return ""
	})
	if strings.Contains(got.Action, "is not the alpha you pinned") || !strings.Contains(got.Action, "does not accept this device") {
		t.Errorf("beta's status about alpha, which removed beta:\n  message: %s\n  action:  %s\nthe device answering is alpha itself (same ID); the action should say alpha no longer accepts this device",
			got.Message, got.Action)
	}
}
