package pair

import (
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
	"github.com/syncd-project/syncd/transport/pair/cpace"
)

// ALPN is the TLS application protocol of a pairing connection. It is also
// the label that opens the CPace channel identifier.
const ALPN = "syncd-pair/1"

// ExporterLabel and ExporterLen are the TLS exporter parameters whose
// output goes in Binding.Exporter (see Exporter).
const (
	ExporterLabel = "EXPORTER-syncd-pair"
	ExporterLen   = 32
)

// Default Options values.
const (
	DefaultTTL            = 5 * time.Minute
	DefaultAttemptTimeout = 30 * time.Second
)

// Errors. A wrong code and a relaying man in the middle look the same to
// both sides, on purpose: neither learns more than "the keys differ".
var (
	ErrWrongCode = errors.New("wrong pairing code (or the connection was intercepted)")
	ErrExpired   = errors.New("pairing code expired")
	ErrBurnt     = errors.New("pairing code already used: each code allows one attempt")
	ErrBusy      = errors.New("pairing code is being tried by another device")
	ErrCanceled  = errors.New("pairing canceled")
	ErrProtocol  = errors.New("pairing protocol error")
)

// Binding is what ties one pairing run to one TLS session and the two
// identities in it. Both sides fill it from their own view of the session.
type Binding struct {
	// Exporter is ExportKeyingMaterial(ExporterLabel, nil, ExporterLen) of
	// the TLS connection the pairing runs over (see Exporter). A relaying
	// man in the middle has two TLS sessions, so the two sides' values
	// differ. 16 to 64 bytes.
	Exporter []byte
	// Local is this device's ID (its CA) as presented in the handshake.
	Local deviceid.ID
	// Peer is the ID of the CA the peer presented in the handshake.
	Peer deviceid.ID
	// Name is this device's name, sent to the peer (at most MaxNameLen
	// bytes, no control characters; may be empty).
	Name string
}

func (b Binding) check() error {
	if n := len(b.Exporter); n < 16 || n > 64 {
		return fmt.Errorf("pairing binding: exporter of %d bytes, want 16 to 64", n)
	}
	if b.Local.IsZero() || b.Peer.IsZero() {
		return errors.New("pairing binding: missing device ID")
	}
	if b.Local == b.Peer {
		return errors.New("pairing binding: a device cannot pair with itself")
	}
	if _, err := checkName([]byte(b.Name)); err != nil {
		return fmt.Errorf("pairing binding: local name: %w", err)
	}
	return nil
}

// Exporter returns the TLS exporter value for Binding.Exporter. It needs a
// completed handshake (TLS 1.3, or 1.2 with extended master secret).
func Exporter(cs tls.ConnectionState) ([]byte, error) {
	return cs.ExportKeyingMaterial(ExporterLabel, nil, ExporterLen)
}

// Result is the outcome of a successful pairing: the other device, proven to
// know the code and to sit at the other end of this very TLS session. The
// caller pins the CA whose ID is PeerID.
type Result struct {
	PeerID   deviceid.ID
	PeerName string
}

// channelID is the CPace channel identifier: the protocol label, then the
// joiner's (initiator's) and the host's (responder's) CA IDs, in that order.
func channelID(joiner, host deviceid.ID) []byte {
	return cpace.AppendLV(cpace.AppendLV(cpace.AppendLV(nil, []byte(ALPN)), joiner[:]), host[:])
}

// doneTag is the host's final acknowledgement: proof that it verified the
// joiner's tag and will pin it.
func doneTag(isk []byte) []byte {
	m := hmac.New(sha512.New, isk)
	m.Write([]byte(ALPN + " host accepted"))
	return m.Sum(nil)
}

// Options configure a Host. The zero value is usable.
type Options struct {
	// TTL is how long the code accepts an attempt. Default DefaultTTL.
	TTL time.Duration
	// AttemptTimeout bounds one attempt: Accept sets it as the deadline of
	// a conn that has SetDeadline. Default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Code is the code to use; zero means NewHost draws a random one.
	Code Code
}

type hostState int

const (
	stateOpen     hostState = iota // waiting for the one attempt
	stateBusy                      // an attempt holds the code
	stateFinished                  // success, failure, expiry or cancel: done is closed
)

// Host is the side that shows the code. It owns one code and allows one
// attempt on it: the first joiner whose hello arrives claims the code, and
// whatever happens next (success, wrong code, abort, I/O error) uses it up.
// Other joiners meanwhile get ErrBusy, later ones ErrBurnt or ErrExpired.
// Safe for concurrent use by any number of Accept calls.
type Host struct {
	code    Code
	expires time.Time
	now     func() time.Time
	attempt time.Duration
	done    chan struct{} // closed when state becomes stateFinished

	mu     sync.Mutex // guards the fields below
	state  hostState
	result Result
	err    error
}

// NewHost returns a Host with a fresh code (or o.Code) valid for o.TTL.
func NewHost(o Options) (*Host, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	code := o.Code
	if code.IsZero() {
		var err error
		if code, err = NewCode(); err != nil {
			return nil, err
		}
	}
	return &Host{
		code:    code,
		expires: o.Now().Add(o.TTL),
		now:     o.Now,
		attempt: o.AttemptTimeout,
		done:    make(chan struct{}),
	}, nil
}

// Open reports whether the code still waits for its one attempt: no
// joiner's hello has claimed it and it is not used up.
func (h *Host) Open() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == stateOpen
}

// Code returns the code to show to the user.
func (h *Host) Code() Code { return h.code }

// Expires returns the moment after which no attempt may start.
func (h *Host) Expires() time.Time { return h.expires }

// Done is closed once the code is used up: paired, failed, expired (as
// noticed by Accept or Wait) or cancelled.
func (h *Host) Done() <-chan struct{} { return h.done }

// Cancel closes a code that is still waiting: later joiners get ErrBurnt
// and Wait returns ErrCanceled. An attempt already running is not stopped
// (close its connection for that).
func (h *Host) Cancel() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == stateOpen {
		h.finishLocked(Result{}, ErrCanceled)
	}
}

// Wait blocks until the code is used up and returns the outcome of its one
// attempt: the Result of a successful pairing, or the attempt's error,
// ErrExpired when no attempt started in time, or ErrCanceled. It returns
// ctx.Err() if ctx ends first.
func (h *Host) Wait(ctx context.Context) (Result, error) {
	timer := time.NewTimer(max(h.expires.Sub(h.now()), 0))
	defer timer.Stop()
	expiry := timer.C
	for {
		select {
		case <-h.done:
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.result, h.err
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-expiry:
			h.mu.Lock()
			switch {
			case h.state == stateOpen && !h.now().Before(h.expires):
				h.finishLocked(Result{}, ErrExpired)
				expiry = nil
			case h.state == stateOpen: // the clock disagrees with the timer
				timer.Reset(max(h.expires.Sub(h.now()), time.Millisecond))
			default: // an attempt runs, bounded by its own deadline
				expiry = nil
			}
			h.mu.Unlock()
		}
	}
}

func (h *Host) finishLocked(r Result, err error) {
	if h.state == stateFinished {
		return
	}
	h.state, h.result, h.err = stateFinished, r, err
	close(h.done)
}

// claim takes the code for one attempt, or says why it cannot.
func (h *Host) claim() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.state {
	case stateOpen:
		if !h.now().Before(h.expires) {
			h.finishLocked(Result{}, ErrExpired)
			return ErrExpired
		}
		h.state = stateBusy
		return nil
	case stateBusy:
		return ErrBusy
	}
	if errors.Is(h.err, ErrExpired) {
		return ErrExpired
	}
	return ErrBurnt
}

type deadliner interface{ SetDeadline(time.Time) error }

// Accept runs the host's side of the protocol on conn, a pairing connection
// (normally the *tls.Conn the transport handed over), with b describing that
// connection. It returns the joiner's identity only when both key
// confirmations verified; then the caller pins the joiner's CA.
//
// A conn with SetDeadline gets the attempt timeout as its deadline. A
// connection that never sends a well-formed hello does not use the code up.
func (h *Host) Accept(conn io.ReadWriter, b Binding) (Result, error) {
	if err := b.check(); err != nil {
		return Result{}, err
	}
	if d, ok := conn.(deadliner); ok {
		_ = d.SetDeadline(time.Now().Add(h.attempt))
		defer func() { _ = d.SetDeadline(time.Time{}) }()
	}
	hello, err := readExpect(conn, msgHello)
	if err != nil {
		replyError(conn, err)
		return Result{}, withContext("read hello", err)
	}
	if err := h.claim(); err != nil {
		replyError(conn, err)
		return Result{}, err
	}
	r, err := h.run(conn, b, hello)
	h.mu.Lock()
	h.finishLocked(r, err)
	h.mu.Unlock()
	return r, err
}

// run is the host's protocol after the claim: every outcome uses the code.
func (h *Host) run(conn io.ReadWriter, b Binding, hello message) (Result, error) {
	p, err := cpace.New(cpace.Responder, h.code.prs(), channelID(b.Peer, b.Local), b.Exporter, []byte(b.Name))
	if err != nil {
		_ = writeMessage(conn, message{typ: msgError, reason: reasonInternal})
		return Result{}, fmt.Errorf("pairing: %w", err)
	}
	s, err := p.Finish(hello.share, []byte(hello.name))
	if err != nil {
		_ = writeMessage(conn, message{typ: msgError, reason: reasonProtocol})
		return Result{}, fmt.Errorf("%w: joiner's share: %v", ErrProtocol, err)
	}
	if err := writeMessage(conn, message{typ: msgReply, share: p.Share(), tag: s.Tag(), name: b.Name}); err != nil {
		return Result{}, fmt.Errorf("pairing: send reply: %w", err)
	}
	c, err := readExpect(conn, msgConfirm)
	if err != nil {
		replyError(conn, err)
		return Result{}, withContext("read confirmation", err)
	}
	if !s.VerifyPeerTag(c.tag) {
		_ = writeMessage(conn, message{typ: msgError, reason: reasonWrongCode})
		return Result{}, ErrWrongCode
	}
	if err := writeMessage(conn, message{typ: msgDone, tag: doneTag(s.ISK())}); err != nil {
		return Result{}, fmt.Errorf("pairing: send acknowledgement: %w", err)
	}
	return Result{PeerID: b.Peer, PeerName: hello.name}, nil
}

// withContext prefixes err with what we were doing, except for the peer's
// own error message, which reads best alone on the user's screen.
func withContext(what string, err error) error {
	var pe *peerError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("pairing: %s: %w", what, err)
}

// replyError tells the peer why we stop, when that is useful: not after an
// I/O error (the connection is gone) nor after the peer's own error message
// (it has stopped reading).
func replyError(w io.Writer, err error) {
	var pe *peerError
	if errors.As(err, &pe) {
		return
	}
	if errors.Is(err, ErrProtocol) || errors.Is(err, ErrBusy) || errors.Is(err, ErrExpired) ||
		errors.Is(err, ErrBurnt) || errors.Is(err, ErrCanceled) || errors.Is(err, ErrWrongCode) {
		_ = writeMessage(w, message{typ: msgError, reason: reasonFor(err)})
	}
}

// Join runs the joiner's side of the protocol on conn, the pairing
// connection dialled to the host (normally the *tls.Conn from the
// transport's DialPair), with the code the user typed. It returns the host's
// identity only when both key confirmations verified; then the caller pins
// the host's CA. Join sets no deadline: give conn one, or close it to abort.
func Join(conn io.ReadWriter, code Code, b Binding) (Result, error) {
	if code.IsZero() {
		return Result{}, fmt.Errorf("%w: empty code", ErrInvalidCode)
	}
	if err := b.check(); err != nil {
		return Result{}, err
	}
	p, err := cpace.New(cpace.Initiator, code.prs(), channelID(b.Local, b.Peer), b.Exporter, []byte(b.Name))
	if err != nil {
		return Result{}, fmt.Errorf("pairing: %w", err)
	}
	if err := writeMessage(conn, message{typ: msgHello, share: p.Share(), name: b.Name}); err != nil {
		return Result{}, fmt.Errorf("pairing: send hello: %w", err)
	}
	reply, err := readExpect(conn, msgReply)
	if err != nil {
		replyError(conn, err)
		return Result{}, withContext("read reply", err)
	}
	s, err := p.Finish(reply.share, []byte(reply.name))
	if err != nil {
		_ = writeMessage(conn, message{typ: msgError, reason: reasonProtocol})
		return Result{}, fmt.Errorf("%w: host's share: %v", ErrProtocol, err)
	}
	hostOK := s.VerifyPeerTag(reply.tag)
	// Our tag goes out even when the host's did not verify: that is how the
	// host learns the code was wrong. It gives nothing to test offline.
	if err := writeMessage(conn, message{typ: msgConfirm, tag: s.Tag()}); err != nil {
		if !hostOK {
			return Result{}, ErrWrongCode
		}
		return Result{}, fmt.Errorf("pairing: send confirmation: %w", err)
	}
	done, err := readMessage(conn)
	if !hostOK {
		return Result{}, ErrWrongCode
	}
	if err != nil {
		return Result{}, withContext("read acknowledgement", err)
	}
	if done.typ != msgDone || !hmac.Equal(done.tag, doneTag(s.ISK())) {
		return Result{}, fmt.Errorf("%w: host's acknowledgement does not verify", ErrProtocol)
	}
	return Result{PeerID: b.Peer, PeerName: reply.name}, nil
}
