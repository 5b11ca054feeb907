package pair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"

	"github.com/syncd-project/syncd/transport/pair/cpace"
)

// Message types (first byte of a frame).
const (
	msgHello   byte = 1    // joiner -> host: Ya, joiner name
	msgReply   byte = 2    // host -> joiner: Yb, Tb, host name
	msgConfirm byte = 3    // joiner -> host: Ta
	msgDone    byte = 4    // host -> joiner: Td
	msgError   byte = 0x7f // either way: one reason byte, then the sender stops
)

// Frame layout: type (1 byte), payload length (2 bytes, big endian), payload.
const (
	headerSize = 3
	// MaxPayload bounds every payload; the largest legal one is a reply
	// with a maximal name (32 + 64 + MaxNameLen bytes).
	MaxPayload = 512
	// MaxNameLen bounds a device name on the wire, in bytes of UTF-8.
	MaxNameLen = 128
)

// reason is the payload of an error message.
type reason byte

const (
	reasonProtocol  reason = 1 // malformed or unexpected message, invalid share
	reasonBusy      reason = 2 // another joiner holds the code
	reasonExpired   reason = 3 // the code expired
	reasonBurnt     reason = 4 // the code was already used or cancelled
	reasonWrongCode reason = 5 // the peer's confirmation did not verify
	reasonInternal  reason = 6 // the sender failed locally
)

// err maps a reason sent by the peer to the sentinel the caller sees.
func (r reason) err() error {
	switch r {
	case reasonBusy:
		return ErrBusy
	case reasonExpired:
		return ErrExpired
	case reasonBurnt:
		return ErrBurnt
	case reasonWrongCode:
		return ErrWrongCode
	case reasonInternal:
		return fmt.Errorf("%w: the peer failed internally", ErrProtocol)
	case reasonProtocol:
		return fmt.Errorf("%w: the peer rejected our message", ErrProtocol)
	}
	return fmt.Errorf("%w: the peer reported unknown error %d", ErrProtocol, byte(r))
}

// reasonFor maps a local sentinel to the reason told to the peer.
func reasonFor(err error) reason {
	switch {
	case errors.Is(err, ErrBusy):
		return reasonBusy
	case errors.Is(err, ErrExpired):
		return reasonExpired
	case errors.Is(err, ErrBurnt), errors.Is(err, ErrCanceled):
		return reasonBurnt
	case errors.Is(err, ErrWrongCode):
		return reasonWrongCode
	}
	return reasonProtocol
}

// message is one decoded frame. Which fields are set depends on typ.
type message struct {
	typ    byte
	share  []byte // hello, reply: cpace.ShareSize bytes
	tag    []byte // reply, confirm, done: cpace.TagSize bytes
	name   string // hello, reply: the sender's device name
	reason reason // error
}

// encode returns the frame of m.
func (m message) encode() ([]byte, error) {
	var p []byte
	switch m.typ {
	case msgHello:
		p = append(append(p, m.share...), m.name...)
	case msgReply:
		p = append(append(append(p, m.share...), m.tag...), m.name...)
	case msgConfirm, msgDone:
		p = append(p, m.tag...)
	case msgError:
		p = append(p, byte(m.reason))
	default:
		return nil, fmt.Errorf("pairing: encode unknown message type %d", m.typ)
	}
	if len(p) > MaxPayload {
		return nil, fmt.Errorf("pairing: message of %d bytes exceeds %d", len(p), MaxPayload)
	}
	f := make([]byte, headerSize, headerSize+len(p))
	f[0] = m.typ
	binary.BigEndian.PutUint16(f[1:], uint16(len(p)))
	return append(f, p...), nil
}

// decodeMessage parses one complete frame. Every field is checked against
// its exact size and the name against checkName; errors wrap ErrProtocol.
func decodeMessage(frame []byte) (message, error) {
	if len(frame) < headerSize {
		return message{}, fmt.Errorf("%w: short frame (%d bytes)", ErrProtocol, len(frame))
	}
	n := int(binary.BigEndian.Uint16(frame[1:]))
	if n > MaxPayload {
		return message{}, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrProtocol, n, MaxPayload)
	}
	if len(frame)-headerSize != n {
		return message{}, fmt.Errorf("%w: frame length %d does not match header %d", ErrProtocol, len(frame)-headerSize, n)
	}
	m := message{typ: frame[0]}
	p := frame[headerSize:]
	var err error
	switch m.typ {
	case msgHello:
		if len(p) < cpace.ShareSize {
			return message{}, fmt.Errorf("%w: hello of %d bytes", ErrProtocol, len(p))
		}
		m.share = clone(p[:cpace.ShareSize])
		m.name, err = checkName(p[cpace.ShareSize:])
	case msgReply:
		if len(p) < cpace.ShareSize+cpace.TagSize {
			return message{}, fmt.Errorf("%w: reply of %d bytes", ErrProtocol, len(p))
		}
		m.share = clone(p[:cpace.ShareSize])
		m.tag = clone(p[cpace.ShareSize : cpace.ShareSize+cpace.TagSize])
		m.name, err = checkName(p[cpace.ShareSize+cpace.TagSize:])
	case msgConfirm, msgDone:
		if len(p) != cpace.TagSize {
			return message{}, fmt.Errorf("%w: confirmation of %d bytes", ErrProtocol, len(p))
		}
		m.tag = clone(p)
	case msgError:
		if len(p) != 1 {
			return message{}, fmt.Errorf("%w: error message of %d bytes", ErrProtocol, len(p))
		}
		m.reason = reason(p[0])
	default:
		return message{}, fmt.Errorf("%w: unknown message type %d", ErrProtocol, m.typ)
	}
	if err != nil {
		return message{}, err
	}
	return m, nil
}

// checkName accepts a device name of at most MaxNameLen bytes of valid
// UTF-8 without control or format characters (no terminal escapes, no
// bidirectional overrides): names end up on the user's screen.
func checkName(b []byte) (string, error) {
	if len(b) > MaxNameLen {
		return "", fmt.Errorf("%w: name of %d bytes exceeds %d", ErrProtocol, len(b), MaxNameLen)
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%w: name is not valid UTF-8", ErrProtocol)
	}
	for _, r := range string(b) {
		if unicode.In(r, unicode.Cc, unicode.Cf) {
			return "", fmt.Errorf("%w: name contains control character %U", ErrProtocol, r)
		}
	}
	return string(b), nil
}

// readMessage reads one frame, never more than headerSize+MaxPayload bytes.
// A message of type msgError comes back as the error its reason names; I/O
// errors are returned as they are.
func readMessage(r io.Reader) (message, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return message{}, err
	}
	n := int(binary.BigEndian.Uint16(h[1:]))
	if n > MaxPayload {
		return message{}, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrProtocol, n, MaxPayload)
	}
	frame := make([]byte, headerSize+n)
	copy(frame, h[:])
	if _, err := io.ReadFull(r, frame[headerSize:]); err != nil {
		return message{}, err
	}
	m, err := decodeMessage(frame)
	if err != nil {
		return message{}, err
	}
	if m.typ == msgError {
		return message{}, &peerError{r: m.reason}
	}
	return m, nil
}

// readExpect reads one message and insists on its type.
func readExpect(r io.Reader, typ byte) (message, error) {
	m, err := readMessage(r)
	if err != nil {
		return message{}, err
	}
	if m.typ != typ {
		return message{}, fmt.Errorf("%w: got message type %d, want %d", ErrProtocol, m.typ, typ)
	}
	return m, nil
}

func writeMessage(w io.Writer, m message) error {
	f, err := m.encode()
	if err != nil {
		return err
	}
	_, err = w.Write(f)
	return err
}

// peerError is an error message received from the peer. It unwraps to the
// matching sentinel, so errors.Is(err, ErrBusy) works on the joiner's side.
type peerError struct{ r reason }

func (e *peerError) Error() string { return "the other device says: " + e.r.err().Error() }
func (e *peerError) Unwrap() error { return e.r.err() }

func clone(b []byte) []byte { return append([]byte(nil), b...) }
