package pair

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
	"github.com/syncd-project/syncd/transport/pair/cpace"
)

var (
	idHost   = deviceid.FromPublicKeyInfo([]byte("host CA"))
	idJoiner = deviceid.FromPublicKeyInfo([]byte("joiner CA"))
	idMallet = deviceid.FromPublicKeyInfo([]byte("mallet CA"))
)

func exporter(b byte) []byte { return bytes.Repeat([]byte{b}, ExporterLen) }

// bindings returns matching host and joiner bindings for one session.
func bindings() (host, joiner Binding) {
	return Binding{Exporter: exporter(1), Local: idHost, Peer: idJoiner, Name: "home server"},
		Binding{Exporter: exporter(1), Local: idJoiner, Peer: idHost, Name: "laptop"}
}

func mustCode(t *testing.T, s string) Code {
	t.Helper()
	c, err := ParseCode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newHost(t *testing.T, o Options) *Host {
	t.Helper()
	if o.Code.IsZero() {
		o.Code = mustCode(t, "7KQ3-9XMD")
	}
	h, err := NewHost(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type outcome struct {
	res Result
	err error
}

// run pairs over net.Pipe; each side closes its end when it returns, so a
// side that stops early can never leave the other blocked.
func run(h *Host, hb Binding, code Code, jb Binding) (host, joiner outcome) {
	hc, jc := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer hc.Close()
		host.res, host.err = h.Accept(hc, hb)
	})
	wg.Go(func() {
		defer jc.Close()
		joiner.res, joiner.err = Join(jc, code, jb)
	})
	wg.Wait()
	return host, joiner
}

func TestPairRightCode(t *testing.T) {
	hb, jb := bindings()
	// Both ways: each device in turn shows the code.
	for _, tc := range []struct {
		name   string
		hb, jb Binding
	}{
		{"server hosts", hb, jb},
		{"laptop hosts", jb, hb},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, Options{})
			ho, jo := run(h, tc.hb, h.Code(), tc.jb)
			if ho.err != nil || jo.err != nil {
				t.Fatalf("Accept() error = %v, Join() error = %v, want nil, nil", ho.err, jo.err)
			}
			if want := (Result{PeerID: tc.jb.Local, PeerName: tc.jb.Name}); ho.res != want {
				t.Errorf("Accept() = %+v, want %+v", ho.res, want)
			}
			if want := (Result{PeerID: tc.hb.Local, PeerName: tc.hb.Name}); jo.res != want {
				t.Errorf("Join() = %+v, want %+v", jo.res, want)
			}
			r, err := h.Wait(context.Background())
			if err != nil || r != ho.res {
				t.Errorf("Wait() = %+v, %v, want %+v, nil", r, err, ho.res)
			}
			// The code is used up even after a success.
			ho, jo = run(h, tc.hb, h.Code(), tc.jb)
			if !errors.Is(ho.err, ErrBurnt) || !errors.Is(jo.err, ErrBurnt) {
				t.Errorf("second attempt errors = %v, %v, want ErrBurnt on both", ho.err, jo.err)
			}
		})
	}
}

func TestWrongCodeFailsBothAndBurns(t *testing.T) {
	hb, jb := bindings()
	h := newHost(t, Options{})
	ho, jo := run(h, hb, mustCode(t, "7KQ3-9XME"), jb)
	if !errors.Is(ho.err, ErrWrongCode) {
		t.Errorf("Accept() error = %v, want ErrWrongCode", ho.err)
	}
	if !errors.Is(jo.err, ErrWrongCode) {
		t.Errorf("Join() error = %v, want ErrWrongCode", jo.err)
	}
	if _, err := h.Wait(context.Background()); !errors.Is(err, ErrWrongCode) {
		t.Errorf("Wait() error = %v, want ErrWrongCode", err)
	}
	// The right code no longer works.
	ho, jo = run(h, hb, h.Code(), jb)
	if !errors.Is(ho.err, ErrBurnt) || !errors.Is(jo.err, ErrBurnt) {
		t.Errorf("retry errors = %v, %v, want ErrBurnt on both", ho.err, jo.err)
	}
}

// Any disagreement in what is bound looks like a wrong code to both sides.
func TestBindingMismatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(hb, jb *Binding)
	}{
		{"other TLS session", func(hb, jb *Binding) { jb.Exporter = exporter(2) }},
		{"joiner sees another host", func(hb, jb *Binding) { jb.Peer = idMallet }},
		{"host sees another joiner", func(hb, jb *Binding) { hb.Peer = idMallet }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hb, jb := bindings()
			tc.change(&hb, &jb)
			h := newHost(t, Options{})
			ho, jo := run(h, hb, h.Code(), jb)
			if !errors.Is(ho.err, ErrWrongCode) || !errors.Is(jo.err, ErrWrongCode) {
				t.Errorf("errors = %v, %v, want ErrWrongCode on both", ho.err, jo.err)
			}
		})
	}
}

func TestExpired(t *testing.T) {
	hb, jb := bindings()
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHost(t, Options{TTL: time.Minute, Now: clock})
	if got, want := h.Expires(), now.Add(time.Minute); !got.Equal(want) {
		t.Errorf("Expires() = %v, want %v", got, want)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	ho, jo := run(h, hb, h.Code(), jb)
	if !errors.Is(ho.err, ErrExpired) || !errors.Is(jo.err, ErrExpired) {
		t.Errorf("errors = %v, %v, want ErrExpired on both", ho.err, jo.err)
	}
	if _, err := h.Wait(context.Background()); !errors.Is(err, ErrExpired) {
		t.Errorf("Wait() error = %v, want ErrExpired", err)
	}
	ho, jo = run(h, hb, h.Code(), jb)
	if !errors.Is(ho.err, ErrExpired) || !errors.Is(jo.err, ErrExpired) {
		t.Errorf("later errors = %v, %v, want ErrExpired on both", ho.err, jo.err)
	}
}

// Wait notices expiry by itself, with no attempt at all.
func TestWaitExpires(t *testing.T) {
	h := newHost(t, Options{TTL: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.Wait(ctx); !errors.Is(err, ErrExpired) {
		t.Fatalf("Wait() error = %v, want ErrExpired", err)
	}
	select {
	case <-h.Done():
	default:
		t.Error("Done() not closed after expiry")
	}
}

func TestWaitContext(t *testing.T) {
	h := newHost(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait(cancelled ctx) error = %v, want context.Canceled", err)
	}
}

func TestCancel(t *testing.T) {
	hb, jb := bindings()
	h := newHost(t, Options{})
	h.Cancel()
	if _, err := h.Wait(context.Background()); !errors.Is(err, ErrCanceled) {
		t.Errorf("Wait() error = %v, want ErrCanceled", err)
	}
	ho, jo := run(h, hb, h.Code(), jb)
	if !errors.Is(ho.err, ErrBurnt) || !errors.Is(jo.err, ErrBurnt) {
		t.Errorf("errors = %v, %v, want ErrBurnt on both", ho.err, jo.err)
	}
}

// manualJoiner drives the joiner's side step by step.
type manualJoiner struct {
	t    *testing.T
	conn net.Conn
	p    *cpace.Party
	s    *cpace.Session
}

func (m *manualJoiner) hello(code Code, jb Binding) message {
	m.t.Helper()
	var err error
	m.p, err = cpace.New(cpace.Initiator, code.prs(), channelID(jb.Local, jb.Peer), jb.Exporter, []byte(jb.Name))
	if err != nil {
		m.t.Fatal(err)
	}
	if err := writeMessage(m.conn, message{typ: msgHello, share: m.p.Share(), name: jb.Name}); err != nil {
		m.t.Fatal(err)
	}
	reply, err := readExpect(m.conn, msgReply)
	if err != nil {
		m.t.Fatal(err)
	}
	if m.s, err = m.p.Finish(reply.share, []byte(reply.name)); err != nil {
		m.t.Fatal(err)
	}
	return reply
}

func (m *manualJoiner) confirm() message {
	m.t.Helper()
	if err := writeMessage(m.conn, message{typ: msgConfirm, tag: m.s.Tag()}); err != nil {
		m.t.Fatal(err)
	}
	done, err := readExpect(m.conn, msgDone)
	if err != nil {
		m.t.Fatal(err)
	}
	return done
}

func TestConcurrentJoinersFirstHoldsTheCode(t *testing.T) {
	hb, jb := bindings()
	h := newHost(t, Options{})

	// Joiner 1 sends its hello and pauses before confirming.
	hc1, jc1 := net.Pipe()
	defer jc1.Close()
	first := make(chan outcome, 1)
	go func() {
		defer hc1.Close()
		r, err := h.Accept(hc1, hb)
		first <- outcome{r, err}
	}()
	j1 := &manualJoiner{t: t, conn: jc1}
	j1.hello(h.Code(), jb)

	// Joiner 2, with the right code, is turned away while 1 holds it.
	jb2 := jb
	jb2.Local, jb2.Name = idMallet, "intruder"
	hb2 := hb
	hb2.Peer = idMallet
	ho, jo := run(h, hb2, h.Code(), jb2)
	if !errors.Is(ho.err, ErrBusy) || !errors.Is(jo.err, ErrBusy) {
		t.Errorf("second joiner errors = %v, %v, want ErrBusy on both", ho.err, jo.err)
	}

	// Joiner 1 completes.
	j1.confirm()
	if o := <-first; o.err != nil || o.res.PeerID != idJoiner {
		t.Errorf("first Accept() = %+v, %v, want joiner, nil", o.res, o.err)
	}
	ho, jo = run(h, hb2, h.Code(), jb2)
	if !errors.Is(ho.err, ErrBurnt) || !errors.Is(jo.err, ErrBurnt) {
		t.Errorf("late joiner errors = %v, %v, want ErrBurnt on both", ho.err, jo.err)
	}
}

func TestConcurrentJoinersOneWins(t *testing.T) {
	hb, jb := bindings()
	h := newHost(t, Options{})
	const n = 8
	results := make([][2]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ho, jo := run(h, hb, h.Code(), jb)
			results[i] = [2]outcome{ho, jo}
		})
	}
	wg.Wait()
	wins := 0
	for i, r := range results {
		ho, jo := r[0], r[1]
		switch {
		case ho.err == nil && jo.err == nil:
			wins++
		case errors.Is(ho.err, ErrBusy) && errors.Is(jo.err, ErrBusy),
			errors.Is(ho.err, ErrBurnt) && errors.Is(jo.err, ErrBurnt):
		default:
			t.Errorf("joiner %d: errors %v, %v, want success, ErrBusy or ErrBurnt on both", i, ho.err, jo.err)
		}
	}
	if wins != 1 {
		t.Errorf("%d joiners paired, want exactly 1", wins)
	}
}

// A joiner who sends an invalid share burns the code and gets an error.
func TestInvalidShareBurns(t *testing.T) {
	hb, _ := bindings()
	for _, share := range [][]byte{make([]byte, 32), bytes.Repeat([]byte{0xff}, 32)} {
		h := newHost(t, Options{})
		hc, jc := net.Pipe()
		res := make(chan error, 1)
		go func() {
			defer hc.Close()
			_, err := h.Accept(hc, hb)
			res <- err
		}()
		if err := writeMessage(jc, message{typ: msgHello, share: share, name: "x"}); err != nil {
			t.Fatal(err)
		}
		if _, err := readMessage(jc); !errors.Is(err, ErrProtocol) {
			t.Errorf("joiner read error = %v, want ErrProtocol from the host", err)
		}
		jc.Close()
		if err := <-res; !errors.Is(err, ErrProtocol) {
			t.Errorf("Accept() error = %v, want ErrProtocol", err)
		}
		if _, err := h.Wait(context.Background()); !errors.Is(err, ErrProtocol) {
			t.Errorf("Wait() error = %v, want ErrProtocol (code used)", err)
		}
	}
}

// Garbage and dropped connections before a hello do not use the code.
func TestNoHelloDoesNotBurn(t *testing.T) {
	hb, jb := bindings()
	h := newHost(t, Options{})
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{msgConfirm, 0, 1, 0},
		{},
	} {
		hc, jc := net.Pipe()
		res := make(chan error, 1)
		go func() {
			defer hc.Close()
			_, err := h.Accept(hc, hb)
			res <- err
		}()
		go func() {
			jc.Write(junk)
			if len(junk) == 0 {
				jc.Close() // a connection dropped without a word
			}
		}()
		go io.Copy(io.Discard, jc) // take the error reply, if any
		err := <-res
		jc.Close()
		if err == nil {
			t.Errorf("Accept(%q) error = nil, want an error", junk)
		}
	}
	ho, jo := run(h, hb, h.Code(), jb)
	if ho.err != nil || jo.err != nil {
		t.Errorf("pairing after junk: errors %v, %v, want nil", ho.err, jo.err)
	}
}

func TestBindingCheck(t *testing.T) {
	hb, _ := bindings()
	for _, tc := range []struct {
		name   string
		change func(b *Binding)
	}{
		{"short exporter", func(b *Binding) { b.Exporter = b.Exporter[:8] }},
		{"no local ID", func(b *Binding) { b.Local = deviceid.ID{} }},
		{"no peer ID", func(b *Binding) { b.Peer = deviceid.ID{} }},
		{"self", func(b *Binding) { b.Peer = b.Local }},
		{"control char in name", func(b *Binding) { b.Name = "evil\x1b[2J" }},
		{"long name", func(b *Binding) { b.Name = string(bytes.Repeat([]byte("n"), MaxNameLen+1)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := hb
			tc.change(&b)
			if err := b.check(); err == nil {
				t.Errorf("check(%s) = nil, want error", tc.name)
			}
			if _, err := Join(&bytes.Buffer{}, mustCode(t, "7KQ3-9XMD"), b); err == nil {
				t.Errorf("Join(%s) error = nil, want error", tc.name)
			}
		})
	}
	if _, err := Join(&bytes.Buffer{}, Code{}, hb); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("Join(zero code) error = %v, want ErrInvalidCode", err)
	}
}

func BenchmarkPair(b *testing.B) {
	hb, jb := bindings()
	for b.Loop() {
		h, _ := NewHost(Options{})
		ho, jo := run(h, hb, h.Code(), jb)
		if ho.err != nil || jo.err != nil {
			b.Fatal(ho.err, jo.err)
		}
	}
}

// The joiner's error for a refused attempt is one clear line.
func TestPeerErrorText(t *testing.T) {
	hb, jb := bindings()
	h := newHost(t, Options{})
	h.Cancel()
	_, jo := run(h, hb, h.Code(), jb)
	if got, want := jo.err.Error(), "the other device says: "+ErrBurnt.Error(); got != want {
		t.Errorf("Join() error = %q, want %q", got, want)
	}
}
