package discovery

// Runs only inside network namespaces made by newLAN (netns_test.go): a
// bridge with no uplink, 198.18.0.0/15 addresses. The helper below sends
// one mDNS query from 198.18.0.2 (which exists only in the test's
// namespace, so binding to it fails anywhere else) to 224.0.0.251:5353 out
// of the namespace's veth, and reads the unicast answer. (A unicast query to
// 198.18.0.1:5353 is answered the same way, except while the daemon's own
// browse holds a second socket on port 5353 and receives it instead.)

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const amplifyHelperEnv = "SYNCD_AMPLIFY_HELPER"

// TestAmplifyHelper is not a test: it is the querier that the namespace
// tests of this file run inside a namespace.
func TestAmplifyHelper(t *testing.T) {
	if os.Getenv(amplifyHelperEnv) != "amplify" {
		return
	}
	os.Exit(amplifyMain())
}

// amplifyMain sends a query with N copies of the PTR question for
// _syncd._tcp.local. (unicast-response bit set) from SRC to DST and prints
// {"sent":bytes,"recv":bytes,"answers":n}.
func amplifyMain() int {
	n, _ := strconv.Atoi(os.Getenv("AMP_N"))
	src := &net.UDPAddr{IP: net.ParseIP(os.Getenv("AMP_SRC"))}
	dst := &net.UDPAddr{IP: net.ParseIP(os.Getenv("AMP_DST")), Port: 5353}
	if dst.IP == nil {
		dst.IP = net.IPv4(224, 0, 0, 251) // the mDNS group, on the namespace's veth only
	}
	c, err := net.ListenUDP("udp4", src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	defer c.Close()
	m := new(dns.Msg)
	m.Id = 4242
	for range n {
		m.Question = append(m.Question, dns.Question{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassINET | 1<<15})
	}
	m.Compress = true
	buf, err := m.Pack()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pack:", err)
		return 1
	}
	if _, err := c.WriteToUDP(buf, dst); err != nil {
		fmt.Fprintln(os.Stderr, "send:", err)
		return 1
	}
	rb := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _, err := c.ReadFromUDP(rb)
	if err != nil {
		got = 0
	}
	answers := 0
	if got > 0 {
		var r dns.Msg
		if err := r.Unpack(rb[:got]); err == nil {
			answers = len(r.Answer) + len(r.Extra)
		}
	}
	json.NewEncoder(os.Stdout).Encode(map[string]int{"sent": len(buf), "recv": got, "answers": answers})
	return 0
}

func amplifyQuery(t *testing.T, l *lan, n int) (sent, recv, answers int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := l.start(1, fmt.Sprintf("querier n=%d", n), []string{amplifyHelperEnv + "=amplify",
		"AMP_N=" + strconv.Itoa(n), "AMP_SRC=" + l.ips[1]},
		exe, "-test.run=^TestAmplifyHelper$")
	line := waitLine(t, p, 20*time.Second, "result", func(s string) bool { return strings.HasPrefix(s, "{") })
	var r map[string]int
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("querier output %q: %v", line, err)
	}
	p.stop()
	return r["sent"], r["recv"], r["answers"]
}

// TestNetnsRepeatedQuestionsNotAmplified: the responder sends its whole
// answer by unicast to whatever source address a query carries, which
// can be forged. One small packet with the PTR question repeated 240
// times made a daemon send 29 times its size (a reflector for attacks);
// it now gets the answer to one question, no larger than a single
// question's.
func TestNetnsRepeatedQuestionsNotAmplified(t *testing.T) {
	l := newLAN(t, 2)
	a := testID(3101)
	pa := l.startDaemon(0, a, 22001)
	waitLine(t, pa, 10*time.Second, "STARTED", func(s string) bool { return s == "STARTED" })

	s1, r1, n1 := amplifyQuery(t, l, 1)
	if r1 == 0 {
		t.Fatalf("no answer to a single PTR question (sent %d bytes)", s1)
	}
	const n = 240 // the query still fits one 1500-byte Ethernet frame
	sN, rN, aN := amplifyQuery(t, l, n)
	t.Logf("1 question: sent %d bytes, got %d bytes (%d records); %d questions: sent %d bytes, got %d bytes (%d records)",
		s1, r1, n1, n, sN, rN, aN)
	if rN == 0 {
		t.Fatalf("no answer to %d questions: the test proves nothing", n)
	}
	if rN > 2*r1 {
		t.Errorf("a %d-byte query (the same PTR question %d times) got a %d-byte unicast answer with %d records, "+
			"%.0fx its size (one question: %d bytes); the responder multiplies duplicate questions into a reflection amplifier",
			sN, n, rN, aN, float64(rN)/float64(sN), r1)
	}
	noErrors(t, pa)
}
