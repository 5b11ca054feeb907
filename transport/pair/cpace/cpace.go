// Package cpace implements the CPace balanced PAKE (draft-irtf-cfrg-cpace,
// draft 21) with the cipher suite CPACE-RISTR255-SHA512, in the
// initiator-responder setting, plus the explicit key confirmation the draft
// suggests in its security considerations.
//
// It owns the cryptography only: no framing, no I/O, no policy. The caller
// (package pair) sends the shares and tags, and decides what a failure means.
//
// Construction (all hashes SHA-512, lv_cat = LEB128 length-prefixed
// concatenation, DSI = "CPaceRistretto255"):
//
//	gen_str = lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid)
//	g       = ristretto255 element derivation (one-way map) of SHA-512(gen_str)
//	Y       = encode(y*g), y a random scalar below 2^252
//	K       = encode(y*decode(Y_peer)); abort if Y_peer does not decode or K is the identity
//	ISK     = SHA-512(lv_cat(DSI||"_ISK", sid, K) || lv_cat(Ya,ADa) || lv_cat(Yb,ADb))
//	mac_key = SHA-512("CPaceMac" || sid || ISK)
//	Ta      = HMAC-SHA-512(mac_key, lv_cat(Ya,ADa)); Tb likewise over lv_cat(Yb,ADb)
//
// The initiator-responder transcript is the one the official vectors call
// ISK_IR; the ordered ("oc") transcript is implemented for the vectors only.
// K is never exposed: a leaked K would allow an offline dictionary attack.
package cpace

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/gtank/ristretto255"
)

// Sizes of the values on the wire.
const (
	ShareSize = 32 // an encoded ristretto255 element (Ya, Yb)
	ISKSize   = sha512.Size
	TagSize   = sha512.Size // HMAC-SHA-512 confirmation tag
)

// DSI is the domain separation identifier of the ristretto255 group.
const DSI = "CPaceRistretto255"

// sInBytes is SHA-512's input block size, used to pad the password block.
const sInBytes = 128

// ErrInvalidShare is returned when the peer's share does not decode to a
// group element or yields the neutral element: the run must be aborted.
var ErrInvalidShare = errors.New("cpace: invalid peer share")

// ErrUsed is returned when a Party is asked to finish twice: its secret
// scalar is erased after the first use.
var ErrUsed = errors.New("cpace: party already finished")

// Role says which side of the initiator-responder flow a party plays. It
// fixes the order of the transcript.
type Role uint8

const (
	// Initiator sends the first share (A in the draft).
	Initiator Role = iota
	// Responder answers it (B in the draft).
	Responder
)

func (r Role) String() string {
	switch r {
	case Initiator:
		return "initiator"
	case Responder:
		return "responder"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Party is one side of one CPace run. It is not safe for concurrent use and
// must not be reused: create one per attempt.
type Party struct {
	role  Role
	sid   []byte
	ad    []byte
	y     *ristretto255.Scalar // nil once finished
	share [ShareSize]byte
}

// New starts a run: it derives the generator from the password-related
// string prs, the channel identifier ci and the session identifier sid,
// draws a fresh secret scalar from crypto/rand and computes this side's
// share. ad is this side's associated data, sent in clear next to the share
// and authenticated by the transcript.
func New(role Role, prs, ci, sid, ad []byte) (*Party, error) {
	return newParty(role, prs, ci, sid, ad, rand.Reader)
}

func newParty(role Role, prs, ci, sid, ad []byte, r io.Reader) (*Party, error) {
	if role != Initiator && role != Responder {
		return nil, fmt.Errorf("cpace: unknown role %d", role)
	}
	y, err := sampleScalar(r)
	if err != nil {
		return nil, err
	}
	return newWithScalar(role, prs, ci, sid, ad, y), nil
}

// newWithScalar is New with a given scalar, for the test vectors.
func newWithScalar(role Role, prs, ci, sid, ad []byte, y *ristretto255.Scalar) *Party {
	g := calculateGenerator(prs, ci, sid)
	p := &Party{
		role: role,
		sid:  bytes.Clone(sid),
		ad:   bytes.Clone(ad),
		y:    y,
	}
	ristretto255.NewElement().ScalarMult(y, g).Encode(p.share[:0])
	return p
}

// Share returns this side's public share (Ya for the initiator, Yb for the
// responder).
func (p *Party) Share() []byte { return bytes.Clone(p.share[:]) }

// Finish takes the peer's share and associated data and derives the
// session. It fails with ErrInvalidShare when the peer's share is not a
// valid encoding or the shared point is the neutral element. The secret
// scalar is erased: a Party finishes once.
func (p *Party) Finish(peerShare, peerAD []byte) (*Session, error) {
	if p.y == nil {
		return nil, ErrUsed
	}
	y := p.y
	p.y = nil
	defer y.Zero()

	k, err := scalarMultVfy(y, peerShare)
	if err != nil {
		return nil, err
	}
	own := lvCat(p.share[:], p.ad)
	peer := lvCat(peerShare, peerAD)
	tr := make([]byte, 0, len(own)+len(peer))
	if p.role == Initiator {
		tr = append(append(tr, own...), peer...)
	} else {
		tr = append(append(tr, peer...), own...)
	}
	s := &Session{
		isk:     deriveISK(p.sid, k, tr),
		ownMsg:  own,
		peerMsg: peer,
	}
	clear(k)
	mk := sha512.New()
	mk.Write([]byte("CPaceMac"))
	mk.Write(p.sid)
	mk.Write(s.isk[:])
	mk.Sum(s.macKey[:0])
	return s, nil
}

// Session is the outcome of a run: the intermediate session key and the key
// confirmation tags. Matching ISKs prove that both sides used the same
// password, channel identifier, session identifier and transcript; only the
// confirmation tags let each side know it.
type Session struct {
	isk     [ISKSize]byte
	macKey  [sha512.Size]byte
	ownMsg  []byte // lv_cat(own share, own AD)
	peerMsg []byte // lv_cat(peer share, peer AD)
}

// ISK returns the intermediate session key. Derive application keys from it
// with a KDF or HMAC; never use it directly as a cipher key.
func (s *Session) ISK() []byte { return bytes.Clone(s.isk[:]) }

// Tag returns this side's key confirmation tag, to send to the peer.
func (s *Session) Tag() []byte { return tag(s.macKey[:], s.ownMsg) }

// VerifyPeerTag reports, in constant time, whether the peer's confirmation
// tag matches: true only if the peer derived the same ISK.
func (s *Session) VerifyPeerTag(t []byte) bool {
	return hmac.Equal(tag(s.macKey[:], s.peerMsg), t)
}

func tag(key, msg []byte) []byte {
	m := hmac.New(sha512.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// sampleScalar draws 32 random bytes and clears the bits above
// group_size_bits = 252, as the draft recommends; the result is below the
// group order, hence canonical. Zero is rejected.
func sampleScalar(r io.Reader) (*ristretto255.Scalar, error) {
	var b [32]byte
	defer clear(b[:])
	for range 8 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("cpace: random scalar: %w", err)
		}
		b[31] &= 0x0f
		s := ristretto255.NewScalar()
		if err := s.Decode(b[:]); err != nil {
			return nil, fmt.Errorf("cpace: random scalar: %w", err)
		}
		if s.Equal(ristretto255.NewScalar()) == 0 {
			return s, nil
		}
	}
	return nil, errors.New("cpace: random source returns zero scalars")
}

// calculateGenerator is G.calculate_generator for ristretto255 with SHA-512.
func calculateGenerator(prs, ci, sid []byte) *ristretto255.Element {
	h := sha512.Sum512(generatorString(prs, ci, sid))
	return ristretto255.NewElement().FromUniformBytes(h[:])
}

// generatorString is lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid), the
// padding making DSI and PRS fill the first SHA-512 block.
func generatorString(prs, ci, sid []byte) []byte {
	zpad := sInBytes - 1 - lvSize(len(prs)) - lvSize(len(DSI))
	if zpad < 0 {
		zpad = 0
	}
	return lvCat([]byte(DSI), prs, make([]byte, zpad), ci, sid)
}

var identity = ristretto255.NewElement().Zero().Encode(nil)

// scalarMultVfy is G.scalar_mult_vfy: it decodes x, multiplies and refuses
// an invalid encoding or the neutral element.
func scalarMultVfy(y *ristretto255.Scalar, x []byte) ([]byte, error) {
	p := ristretto255.NewElement()
	if len(x) != ShareSize || p.Decode(x) != nil {
		return nil, ErrInvalidShare
	}
	k := ristretto255.NewElement().ScalarMult(y, p).Encode(nil)
	if subtle.ConstantTimeCompare(k, identity) == 1 {
		return nil, ErrInvalidShare
	}
	return k, nil
}

func deriveISK(sid, k, transcript []byte) [ISKSize]byte {
	h := sha512.New()
	h.Write(lvCat([]byte(DSI+"_ISK"), sid, k))
	h.Write(transcript)
	var out [ISKSize]byte
	h.Sum(out[:0])
	return out
}

// transcriptOC is the ordered transcript of the symmetric setting:
// "oc" || the lexicographically larger of lv_cat(Ya,ADa), lv_cat(Yb,ADb) ||
// the other. Used only to check the ISK_SY vector.
func transcriptOC(ya, ada, yb, adb []byte) []byte {
	a, b := lvCat(ya, ada), lvCat(yb, adb)
	if bytes.Compare(a, b) < 0 {
		a, b = b, a
	}
	return append(append([]byte("oc"), a...), b...)
}

// sidOutput is the public session identifier of draft section 10.6.
func sidOutput(transcript []byte) []byte {
	h := sha512.New()
	h.Write([]byte("CPaceSidOutput"))
	h.Write(transcript)
	return h.Sum(nil)
}

// AppendLV appends b to dst, prefixed with its length in LEB128 (the draft's
// prepend_len).
func AppendLV(dst, b []byte) []byte {
	n := uint64(len(b))
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	dst = append(dst, byte(n))
	return append(dst, b...)
}

// lvCat is the draft's lv_cat (prefix-free concatenation).
func lvCat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = AppendLV(out, p)
	}
	return out
}

// lvSize is len(prepend_len(x)) for a string x of length n.
func lvSize(n int) int {
	l := n + 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}
