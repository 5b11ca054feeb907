package pair

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	testShare = bytes.Repeat([]byte{0x11}, 32)
	testTag   = bytes.Repeat([]byte{0x22}, 64)
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []message{
		{typ: msgHello, share: testShare, name: "laptop"},
		{typ: msgHello, share: testShare, name: ""},
		{typ: msgHello, share: testShare, name: "Ünïcødé 🙂"},
		{typ: msgReply, share: testShare, tag: testTag, name: strings.Repeat("n", MaxNameLen)},
		{typ: msgConfirm, tag: testTag},
		{typ: msgDone, tag: testTag},
	} {
		f, err := m.encode()
		if err != nil {
			t.Fatalf("encode(%d) error %v", m.typ, err)
		}
		got, err := decodeMessage(f)
		if err != nil {
			t.Fatalf("decodeMessage(encode(%d)) error %v", m.typ, err)
		}
		if diff := cmp.Diff(m, got, cmp.AllowUnexported(message{})); diff != "" {
			t.Errorf("decodeMessage(encode(%d)) mismatch (-want +got):\n%s", m.typ, diff)
		}
		got, err = readMessage(bytes.NewReader(f))
		if err != nil || got.typ != m.typ {
			t.Errorf("readMessage(%d) = %d, %v", m.typ, got.typ, err)
		}
	}
	// Error messages come back from readMessage as the peer's error.
	for r, want := range map[reason]error{
		reasonBusy: ErrBusy, reasonExpired: ErrExpired, reasonBurnt: ErrBurnt,
		reasonWrongCode: ErrWrongCode, reasonProtocol: ErrProtocol, reasonInternal: ErrProtocol, 99: ErrProtocol,
	} {
		f, _ := message{typ: msgError, reason: r}.encode()
		if _, err := readMessage(bytes.NewReader(f)); !errors.Is(err, want) {
			t.Errorf("readMessage(error %d) = %v, want %v", r, err, want)
		}
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	frame := func(typ byte, p ...byte) []byte {
		return append([]byte{typ, byte(len(p) >> 8), byte(len(p))}, p...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short header", []byte{msgHello, 0}},
		{"length beyond frame", []byte{msgConfirm, 0, 64, 1}},
		{"trailing bytes", append(frame(msgConfirm, testTag...), 0)},
		{"oversize", cat([]byte{msgHello, 0x02, 0x01}, make([]byte, 513))},
		{"unknown type", frame(9, 1)},
		{"short hello", frame(msgHello, testShare[:31]...)},
		{"short reply", frame(msgReply, cat(testShare, testTag[:63])...)},
		{"short confirm", frame(msgConfirm, testTag[:63]...)},
		{"long done", frame(msgDone, cat(testTag, []byte{0})...)},
		{"empty error", frame(msgError)},
		{"long error", frame(msgError, 1, 2)},
		{"name not UTF-8", frame(msgHello, cat(testShare, []byte{0xff, 0xfe})...)},
		{"name with escape", frame(msgHello, cat(testShare, []byte("a\x1b[2Jb"))...)},
		{"name with newline", frame(msgHello, cat(testShare, []byte("a\nb"))...)},
		{"name with bidi override", frame(msgHello, cat(testShare, []byte("a\u202eb"))...)},
		{"name too long", frame(msgHello, cat(testShare, bytes.Repeat([]byte("n"), MaxNameLen+1))...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := decodeMessage(tc.in); !errors.Is(err, ErrProtocol) {
				t.Errorf("decodeMessage(%x) = %+v, %v, want ErrProtocol", tc.in, m, err)
			}
		})
	}
	// readMessage refuses an oversize length before reading the payload.
	if _, err := readMessage(bytes.NewReader([]byte{msgHello, 0xff, 0xff})); !errors.Is(err, ErrProtocol) {
		t.Errorf("readMessage(oversize header) error = %v, want ErrProtocol", err)
	}
	if _, err := (message{typ: msgHello, share: testShare, name: strings.Repeat("n", 600)}).encode(); err == nil {
		t.Error("encode(oversize) error = nil, want error")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range []message{
		{typ: msgHello, share: testShare, name: "laptop"},
		{typ: msgReply, share: testShare, tag: testTag, name: "home"},
		{typ: msgConfirm, tag: testTag},
		{typ: msgDone, tag: testTag},
		{typ: msgError, reason: reasonBusy},
	} {
		b, _ := m.encode()
		f.Add(b)
	}
	f.Add([]byte{msgHello, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decodeMessage error %v does not wrap ErrProtocol", err)
			}
			return
		}
		// What decodes re-encodes to the same frame.
		again, err := m.encode()
		if err != nil {
			t.Fatalf("encode(decodeMessage(%x)) error %v", b, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("encode(decodeMessage(%x)) = %x", b, again)
		}
		if _, err := readMessage(bytes.NewReader(b)); err != nil && m.typ != msgError {
			t.Fatalf("readMessage(%x) error %v, decodeMessage accepted it", b, err)
		}
	})
}

// FuzzAccept feeds the host arbitrary bytes as a joiner's stream: it must
// not panic, must fail, and must never report success.
func FuzzAccept(f *testing.F) {
	hello, _ := message{typ: msgHello, share: testShare, name: "x"}.encode()
	f.Add(hello)
	f.Add(append(hello, testTag...))
	f.Add([]byte{})
	hb, _ := bindings()
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := NewHost(Options{})
		if err != nil {
			t.Fatal(err)
		}
		conn := &struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), io.Discard}
		if r, err := h.Accept(conn, hb); err == nil {
			t.Fatalf("Accept(%x) = %+v, nil: paired without the code", in, r)
		}
	})
}
