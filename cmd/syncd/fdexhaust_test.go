package main

// A stranger on the LAN makes the daemon exit by filling its file table.
// Everything binds to 127.0.0.x; discovery is off.

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestIdleStrangersDoNotStopDaemon: a host that knows no code and no
// pinned key opens idle TCP connections to the peer port from many
// addresses until the daemon's descriptors run out (the limit is lowered
// to 64 with prlimit so that 20 loopback addresses suffice). accept(2)
// then fails with EMFILE; the daemon says so once and keeps running, and
// serves again once they are gone.
func TestIdleStrangersDoNotStopDaemon(t *testing.T) {
	bin := buildPairBinary(t)
	d := newPairDev(t, bin, "victim")
	d.addr = pairFreeAddr(t)
	d.start([]string{"prlimit", "--nofile=64:64", "--"}, "--listen", d.addr, "--discovery", "off")

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for ip := 2; ip < 22; ip++ {
		dialer := &net.Dialer{Timeout: 2 * time.Second,
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.0.%d", ip))}}
		for range 8 {
			c, err := dialer.Dial("tcp", d.addr)
			if err != nil {
				break // refused or reset: the daemon is gone, judged below
			}
			conns = append(conns, c) // idle: never sends a ClientHello
		}
	}
	// Give the daemon's accept loop a moment to see the full table, then
	// let go of everything: a healthy daemon recovers at once.
	select {
	case <-d.done:
	case <-time.After(2 * time.Second):
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil

	if out, errOut, code := d.syncd("status"); code != 0 {
		t.Fatalf("status after the flood: exit %d\n%s%s\nlog:\n%s", code, out, errOut, d.log.String())
	}
	select {
	case <-d.done:
		t.Fatalf("daemon exited (%v) after idle TCP connections from unauthenticated addresses:\n%s", d.cmd.ProcessState, d.log.String())
	default:
	}
	if log := d.log.String(); !strings.Contains(log, "accepting peer connections failed; retrying") {
		t.Errorf("the daemon's log does not say accept failed (did the flood reach the descriptor limit?):\n%s", log)
	}
}
