package cpace

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/gtank/ristretto255"
)

// vectors is testdata/vectors.json: the draft's G_Coffee25519 entries.
type vectors struct {
	Coffee map[string]string `json:"G_Coffee25519"`
	Points struct {
		Invalid1 string `json:"Invalid Y1"`
		Invalid2 string `json:"Invalid Y2"`
		// Keys contain commas, which struct tags cannot express.
		Valid map[string]string `json:"Valid"`
	} `json:"G_Coffee25519_points"`
}

func loadVectors(t *testing.T) (vectors, func(string) []byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v, func(s string) []byte {
		t.Helper()
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("bad hex %q: %v", s, err)
		}
		return b
	}
}

func mustScalar(t *testing.T, b []byte) *ristretto255.Scalar {
	t.Helper()
	s := ristretto255.NewScalar()
	if err := s.Decode(b); err != nil {
		t.Fatalf("scalar %x: %v", b, err)
	}
	return s
}

func TestVectors(t *testing.T) {
	v, h := loadVectors(t)
	c := v.Coffee
	prs, ci, sid := h(c["PRS"]), h(c["CI"]), h(c["sid"])
	ada, adb := h(c["ADa"]), h(c["ADb"])

	// CI in the vectors is lv_cat("A_initiator", "B_responder").
	if got, want := lvCat([]byte("A_initiator"), []byte("B_responder")), ci; !bytes.Equal(got, want) {
		t.Errorf("lvCat(ids) = %x, want %x", got, want)
	}

	g := calculateGenerator(prs, ci, sid).Encode(nil)
	if want := h(c["g"]); !bytes.Equal(g, want) {
		t.Errorf("calculateGenerator() = %X, want %X", g, want)
	}

	a := newWithScalar(Initiator, prs, ci, sid, ada, mustScalar(t, h(c["ya"])))
	b := newWithScalar(Responder, prs, ci, sid, adb, mustScalar(t, h(c["yb"])))
	if got, want := a.Share(), h(c["Ya"]); !bytes.Equal(got, want) {
		t.Errorf("Ya = %X, want %X", got, want)
	}
	if got, want := b.Share(), h(c["Yb"]); !bytes.Equal(got, want) {
		t.Errorf("Yb = %X, want %X", got, want)
	}

	kA, err := scalarMultVfy(mustScalar(t, h(c["ya"])), h(c["Yb"]))
	if err != nil {
		t.Fatal(err)
	}
	kB, err := scalarMultVfy(mustScalar(t, h(c["yb"])), h(c["Ya"]))
	if err != nil {
		t.Fatal(err)
	}
	if want := h(c["K"]); !bytes.Equal(kA, want) || !bytes.Equal(kB, want) {
		t.Errorf("K = %X / %X, want %X", kA, kB, want)
	}

	sa, err := a.Finish(b.Share(), adb)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Finish(a.Share(), ada)
	if err != nil {
		t.Fatal(err)
	}
	want := h(c["ISK_IR"])
	if !bytes.Equal(sa.ISK(), want) {
		t.Errorf("initiator ISK = %X, want ISK_IR %X", sa.ISK(), want)
	}
	if !bytes.Equal(sb.ISK(), want) {
		t.Errorf("responder ISK = %X, want ISK_IR %X", sb.ISK(), want)
	}

	ya, yb := h(c["Ya"]), h(c["Yb"])
	trIR := append(lvCat(ya, ada), lvCat(yb, adb)...)
	trOC := transcriptOC(ya, ada, yb, adb)
	if got, want := deriveISK(sid, kA, trOC), h(c["ISK_SY"]); !bytes.Equal(got[:], want) {
		t.Errorf("ISK (ordered transcript) = %X, want ISK_SY %X", got, want)
	}
	if got, want := sidOutput(trIR), h(c["sid_output_ir"]); !bytes.Equal(got, want) {
		t.Errorf("sidOutput(ir) = %X, want %X", got, want)
	}
	if got, want := sidOutput(trOC), h(c["sid_output_oc"]); !bytes.Equal(got, want) {
		t.Errorf("sidOutput(oc) = %X, want %X", got, want)
	}

	// Key confirmation (no official vectors): the tags cross-verify, and
	// mac_key follows draft section 10.4.
	if !sb.VerifyPeerTag(sa.Tag()) || !sa.VerifyPeerTag(sb.Tag()) {
		t.Error("VerifyPeerTag(peer's Tag()) = false, want true")
	}
	mk := sha512.Sum512(append(append([]byte("CPaceMac"), sid...), want...))
	if got, want := sa.Tag(), tag(mk[:], lvCat(ya, ada)); !bytes.Equal(got, want) {
		t.Errorf("Ta = %X, want %X", got, want)
	}
	if sa.VerifyPeerTag(sa.Tag()) {
		t.Error("VerifyPeerTag(own tag) = true, want false (reflection)")
	}
}

func TestScalarMultVfyPoints(t *testing.T) {
	v, h := loadVectors(t)
	p := v.Points
	for _, k := range []string{"s", "X", "G.scalar_mult_vfy(s,X)", "G.scalar_mult(s,decode(X))"} {
		if p.Valid[k] == "" {
			t.Fatalf("vector Valid[%q] missing", k)
		}
	}
	s := mustScalar(t, h(p.Valid["s"]))
	got, err := scalarMultVfy(s, h(p.Valid["X"]))
	if err != nil {
		t.Fatalf("scalarMultVfy(valid) error %v", err)
	}
	if want := h(p.Valid["G.scalar_mult_vfy(s,X)"]); !bytes.Equal(got, want) {
		t.Errorf("scalarMultVfy(valid) = %X, want %X", got, want)
	}
	if want := h(p.Valid["G.scalar_mult(s,decode(X))"]); !bytes.Equal(got, want) {
		t.Errorf("scalar_mult(valid) = %X, want %X", got, want)
	}
	for _, tc := range []struct {
		name string
		x    []byte
	}{
		{"invalid encoding", h(p.Invalid1)},
		{"identity", h(p.Invalid2)},
		{"short", make([]byte, 31)},
		{"long", make([]byte, 33)},
		{"nil", nil},
		{"all ones", bytes.Repeat([]byte{0xff}, 32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := scalarMultVfy(s, tc.x); !errors.Is(err, ErrInvalidShare) {
				t.Errorf("scalarMultVfy(%x) error = %v, want ErrInvalidShare", tc.x, err)
			}
		})
	}
}

// A protocol run with an invalid peer share must abort, on both roles.
func TestFinishRejectsInvalidShares(t *testing.T) {
	v, h := loadVectors(t)
	for _, role := range []Role{Initiator, Responder} {
		for _, bad := range []string{v.Points.Invalid1, v.Points.Invalid2} {
			p, err := New(role, []byte("pw"), nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Finish(h(bad), nil); !errors.Is(err, ErrInvalidShare) {
				t.Errorf("%v Finish(%s) error = %v, want ErrInvalidShare", role, bad, err)
			}
		}
	}
}

func TestLV(t *testing.T) {
	seq := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}
	for _, tc := range []struct {
		in   []byte
		want string // hex of the prefix only
	}{
		{nil, "00"},
		{[]byte("1234"), "04"},
		{seq(127), "7f"},
		{seq(128), "8001"},
		{seq(300), "ac02"},
	} {
		got := AppendLV(nil, tc.in)
		prefix := hex.EncodeToString(got[:len(got)-len(tc.in)])
		if prefix != tc.want || !bytes.Equal(got[len(got)-len(tc.in):], tc.in) {
			t.Errorf("AppendLV(len %d) prefix = %s, want %s", len(tc.in), prefix, tc.want)
		}
		if lvSize(len(tc.in)) != len(got) {
			t.Errorf("lvSize(%d) = %d, want %d", len(tc.in), lvSize(len(tc.in)), len(got))
		}
	}
	// Draft: lv_cat(b"1234", b"5", b"", b"6789") = 04313233340135000436373839.
	got := hex.EncodeToString(lvCat([]byte("1234"), []byte("5"), nil, []byte("6789")))
	if got != "04313233340135000436373839" {
		t.Errorf("lvCat() = %s, want 04313233340135000436373839", got)
	}
	// Ordered concatenation puts the larger string first, after "oc".
	if got := transcriptOC([]byte("A"), nil, []byte("B"), nil); !bytes.Equal(got, []byte("oc\x01B\x00\x01A\x00")) {
		t.Errorf("transcriptOC() = %q", got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name              string
		prsA, prsB        string
		ciA, ciB          string
		sidA, sidB        string
		adForB, adSeenByA string // ADb as B sends it / as A receives it
		wantMatch         bool
	}{
		{"same inputs", "K7QX9MDA", "K7QX9MDA", "ci", "ci", "sid", "sid", "b", "b", true},
		{"wrong password", "K7QX9MDA", "K7QX9MDB", "ci", "ci", "sid", "sid", "b", "b", false},
		{"other channel", "K7QX9MDA", "K7QX9MDA", "ci", "ci2", "sid", "sid", "b", "b", false},
		{"other session", "K7QX9MDA", "K7QX9MDA", "ci", "ci", "sid", "sid2", "b", "b", false},
		{"tampered AD", "K7QX9MDA", "K7QX9MDA", "ci", "ci", "sid", "sid", "b", "x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(Initiator, []byte(tc.prsA), []byte(tc.ciA), []byte(tc.sidA), []byte("a"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(Responder, []byte(tc.prsB), []byte(tc.ciB), []byte(tc.sidB), []byte(tc.adForB))
			if err != nil {
				t.Fatal(err)
			}
			sb, err := b.Finish(a.Share(), []byte("a"))
			if err != nil {
				t.Fatal(err)
			}
			sa, err := a.Finish(b.Share(), []byte(tc.adSeenByA))
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Equal(sa.ISK(), sb.ISK()); got != tc.wantMatch {
				t.Errorf("ISKs equal = %v, want %v", got, tc.wantMatch)
			}
			if got := sb.VerifyPeerTag(sa.Tag()); got != tc.wantMatch {
				t.Errorf("responder VerifyPeerTag = %v, want %v", got, tc.wantMatch)
			}
			if got := sa.VerifyPeerTag(sb.Tag()); got != tc.wantMatch {
				t.Errorf("initiator VerifyPeerTag = %v, want %v", got, tc.wantMatch)
			}
			if _, err := a.Finish(b.Share(), nil); !errors.Is(err, ErrUsed) {
				t.Errorf("second Finish error = %v, want ErrUsed", err)
			}
		})
	}
}

func TestSampleScalar(t *testing.T) {
	// A source of zeros never yields a usable scalar.
	if _, err := sampleScalar(bytes.NewReader(make([]byte, 1024))); err == nil {
		t.Error("sampleScalar(zeros) error = nil, want error")
	}
	// A short source fails cleanly.
	if _, err := sampleScalar(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("sampleScalar(short) error = nil, want error")
	}
	// All-ones input is masked below 2^252, hence canonical.
	if _, err := sampleScalar(bytes.NewReader(bytes.Repeat([]byte{0xff}, 32))); err != nil {
		t.Errorf("sampleScalar(ones) error = %v", err)
	}
}

func BenchmarkRun(b *testing.B) {
	prs, ci, sid := []byte("K7QX9MDA"), []byte("ci"), make([]byte, 32)
	for b.Loop() {
		a, _ := New(Initiator, prs, ci, sid, []byte("a"))
		r, _ := New(Responder, prs, ci, sid, []byte("b"))
		sa, err := a.Finish(r.Share(), []byte("b"))
		if err != nil {
			b.Fatal(err)
		}
		sb, err := r.Finish(a.Share(), []byte("a"))
		if err != nil {
			b.Fatal(err)
		}
		if !sb.VerifyPeerTag(sa.Tag()) {
			b.Fatal("tag mismatch")
		}
	}
}

// FuzzFinish feeds arbitrary peer shares and AD: Finish must never panic,
// and must accept only 32-byte shares.
func FuzzFinish(f *testing.F) {
	f.Add(make([]byte, 32), []byte("ad"))
	f.Add(bytes.Repeat([]byte{0xff}, 32), []byte{})
	b, _ := New(Responder, []byte("pw"), nil, nil, nil)
	f.Add(b.Share(), []byte("x"))
	f.Fuzz(func(t *testing.T, share, ad []byte) {
		p, err := New(Initiator, []byte("pw"), []byte("ci"), []byte("sid"), []byte("a"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.Finish(share, ad)
		if err == nil && len(share) != ShareSize {
			t.Fatalf("Finish accepted a %d-byte share", len(share))
		}
		if err == nil && len(s.Tag()) != TagSize {
			t.Fatalf("Tag() length %d", len(s.Tag()))
		}
	})
}
