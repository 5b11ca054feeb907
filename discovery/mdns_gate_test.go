package discovery

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestAnswerGate: one packet's copies of a question (handled back to back)
// get one answer, whatever the case of the name; the same question a
// moment later, as another device's browse, gets its own; and at most
// maxAnswers questions a second are answered.
func TestAnswerGate(t *testing.T) {
	var g answerGate
	t0 := time.Unix(1_000_000, 0)
	ptr := dns.Question{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassINET}
	upper := ptr
	upper.Name = "_SYNCD._TCP.LOCAL."
	srv := dns.Question{Name: "x." + serviceFQDN, Qtype: dns.TypeSRV, Qclass: dns.ClassINET}
	allowed := 0
	for i := range 240 {
		q := ptr
		if i%2 == 1 {
			q = upper
		}
		if g.allow(q, t0.Add(time.Duration(i)*time.Microsecond)) {
			allowed++
		}
	}
	if allowed != 1 {
		t.Errorf("240 copies of one question in one packet: %d answered, want 1", allowed)
	}
	if !g.allow(srv, t0) {
		t.Error("another question of the same packet was not answered")
	}
	if !g.allow(ptr, t0.Add(240*time.Microsecond+2*answerGap)) {
		t.Error("the question asked again a moment later (another device) was not answered")
	}
	allowed = 0
	t1 := t0.Add(time.Minute)
	for i := range 10 * maxAnswers {
		if g.allow(ptr, t1.Add(time.Duration(i)*2*answerGap)) {
			allowed++
		}
	}
	span := time.Duration(10*maxAnswers) * 2 * answerGap
	if most := maxAnswers + int(span.Seconds()*maxAnswers) + 1; allowed > most {
		t.Errorf("%d answers to a stream of questions over %v, want at most %d", allowed, span, most)
	}
}
