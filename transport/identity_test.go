package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCreateIdentityFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "identity")
	id, err := CreateIdentity(dir, "laptop", testNow)
	if err != nil {
		t.Fatalf("CreateIdentity() = %v", err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("Stat(dir) = %v, %v, want mode 0700", st.Mode(), err)
	}
	for name, mode := range map[string]os.FileMode{CACertFile: 0o644, CAKeyFile: 0o600, DeviceCertFile: 0o644, DeviceKeyFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("Stat(%s) = %v, %v, want mode %v", name, st.Mode(), err, mode)
		}
	}
	ca, leaf := id.CA, id.Cert.Leaf
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.NotAfter.Sub(testNow) < 19*365*24*time.Hour {
		t.Errorf("CA = IsCA %v usage %v until %v, want a long-lived CA", ca.IsCA, ca.KeyUsage, ca.NotAfter)
	}
	if d := leaf.NotAfter.Sub(testNow); d < 360*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("leaf lifetime = %v, want about a year", d)
	}
	if err := checkLeafShape(leaf); err != nil {
		t.Errorf("checkLeafShape() = %v", err)
	}
	if id.Name != "laptop" {
		t.Errorf("Name = %q, want laptop", id.Name)
	}
	if _, err := CreateIdentity(dir, "again", testNow); !errors.Is(err, ErrIdentityExists) {
		t.Errorf("CreateIdentity(again) = %v, want %v", err, ErrIdentityExists)
	}
	got, err := LoadIdentity(dir, testNow)
	if err != nil {
		t.Fatalf("LoadIdentity() = %v", err)
	}
	if got.ID != id.ID || got.Name != "laptop" {
		t.Errorf("LoadIdentity() = %s %q, want %s laptop", got.ID, got.Name, id.ID)
	}
	if _, err := LoadIdentity(t.TempDir(), testNow); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("LoadIdentity(empty) = %v, want %v", err, ErrNoIdentity)
	}
}

func TestRenewKeepsID(t *testing.T) {
	dir := t.TempDir()
	id, err := CreateIdentity(dir, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	within := 30 * 24 * time.Hour
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"fresh", testNow, false},
		{"31 days left", testNow.Add(LeafLifetime - 31*24*time.Hour), false},
		{"29 days left", testNow.Add(LeafLifetime - 29*24*time.Hour), true},
		{"just renewed", testNow.Add(LeafLifetime - 29*24*time.Hour), false},
		{"expired long ago", testNow.Add(5 * LeafLifetime), true},
		{"clock went back", testNow, true}, // the leaf is not yet valid: renew
	}
	for _, tc := range tests {
		old := id.Leaf()
		renewed, err := id.RenewIfNeeded(tc.now, within)
		if err != nil || renewed != tc.want {
			t.Fatalf("RenewIfNeeded(%s) = %v, %v, want %v", tc.name, renewed, err, tc.want)
		}
		if !renewed {
			continue
		}
		leaf := id.Leaf()
		if leaf.SerialNumber.Cmp(old.SerialNumber) == 0 || leaf.NotAfter.Sub(tc.now) < within {
			t.Errorf("RenewIfNeeded(%s): leaf until %v, want a new one", tc.name, leaf.NotAfter)
		}
		loaded, err := LoadIdentity(dir, tc.now)
		if err != nil {
			t.Fatalf("LoadIdentity after renew (%s) = %v", tc.name, err)
		}
		if loaded.ID != id.ID || !loaded.Cert.Leaf.Equal(leaf) {
			t.Errorf("LoadIdentity after renew (%s) = %s, want %s with the new leaf", tc.name, loaded.ID, id.ID)
		}
		if _, _, err := verifyChain([]*x509.Certificate{leaf, id.CA}, tc.now, x509.ExtKeyUsageClientAuth); err != nil {
			t.Errorf("verifyChain(renewed, %s) = %v", tc.name, err)
		}
	}
}

func TestLoadIdentityErrors(t *testing.T) {
	good := newTestIdentity(t, "good")
	other := newTestIdentity(t, "other")
	read := func(id *Identity, f string) []byte {
		b, err := os.ReadFile(filepath.Join(id.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	sec1DER, _ := x509.MarshalECPrivateKey(good.Cert.PrivateKey.(*ecdsa.PrivateKey))
	tests := []struct {
		name    string
		file    string
		data    []byte // nil: remove the file
		wantErr string // "" means it loads
	}{
		{"missing device.key", DeviceKeyFile, nil, DeviceKeyFile},
		{"not PEM", CACertFile, []byte("hello"), CACertFile},
		{"trailing data", CACertFile, append(read(good, CACertFile), "x"...), CACertFile},
		{"key in cert file", DeviceCertFile, read(good, DeviceKeyFile), DeviceCertFile},
		{"RSA key", DeviceKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER}), "want ECDSA"},
		{"P-384 key", CAKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384DER}), "want P-256"},
		{"key of another device", DeviceKeyFile, read(other, DeviceKeyFile), "does not match"},
		{"leaf of another device", DeviceCertFile, read(other, DeviceCertFile), "not signed by the device CA"},
		{"CA of another device", CACertFile, read(other, CACertFile), CAKeyFile},
		{"leaf as CA", CACertFile, read(good, DeviceCertFile), "not a CA"},
		{"SEC 1 key loads", DeviceKeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER}), ""},
		{"garbage key", DeviceKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "bad private key"},
		{"too large", CACertFile, []byte(strings.Repeat("A", maxIdentityFile+1)), "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{CACertFile, CAKeyFile, DeviceCertFile, DeviceKeyFile} {
				if err := os.WriteFile(filepath.Join(dir, f), read(good, f), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(dir, tc.file)
			if tc.data == nil {
				os.Remove(p)
			} else if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadIdentity(dir, testNow)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadIdentity() = %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("LoadIdentity() = %v, want an error mentioning %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrNoIdentity) {
				t.Errorf("LoadIdentity() = %v, want not ErrNoIdentity for a partial identity", err)
			}
		})
	}
}

func TestLoadIdentityExpiredCA(t *testing.T) {
	id := newTestIdentity(t, "")
	if _, err := LoadIdentity(id.dir, testNow.Add(CALifetime+time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("LoadIdentity(after CA expiry) = %v, want an expiry error", err)
	}
}

// FuzzLoadIdentity writes fuzzed contents into one of the four files of a
// good identity and loads it: it must never panic, and whatever loads must
// be internally consistent.
func FuzzLoadIdentity(f *testing.F) {
	good, err := CreateIdentity(f.TempDir(), "fuzz", testNow)
	if err != nil {
		f.Fatal(err)
	}
	files := []string{CACertFile, CAKeyFile, DeviceCertFile, DeviceKeyFile}
	orig := map[string][]byte{}
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(good.dir, name))
		if err != nil {
			f.Fatal(err)
		}
		orig[name] = b
	}
	for i, name := range files {
		f.Add(uint8(i), orig[name])
		f.Add(uint8(i), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
		f.Add(uint8(i), orig[files[(i+1)%4]])
	}
	f.Add(uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		dir := t.TempDir()
		target := files[int(which)%len(files)]
		for _, name := range files {
			b := orig[name]
			if name == target {
				b = data
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		id, err := LoadIdentity(dir, testNow)
		if err != nil {
			return
		}
		if id.ID != good.ID && target != CACertFile && target != CAKeyFile {
			t.Fatalf("LoadIdentity() = %s, want %s", id.ID, good.ID)
		}
		if _, _, err := verifyChain([]*x509.Certificate{id.Cert.Leaf, id.CA}, testNow, x509.ExtKeyUsageServerAuth); err != nil && id.Cert.Leaf.NotAfter.After(testNow) {
			t.Fatalf("loaded identity does not verify: %v", err)
		}
	})
}

// FuzzVerifyChain feeds peer chains (two DER blobs) to the chain checks.
func FuzzVerifyChain(f *testing.F) {
	a, err := CreateIdentity(f.TempDir(), "a", testNow)
	if err != nil {
		f.Fatal(err)
	}
	b, err := CreateIdentity(f.TempDir(), "b", testNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(a.Cert.Certificate[0], a.CA.Raw)
	f.Add(a.Cert.Certificate[0], b.CA.Raw)
	f.Add(a.CA.Raw, a.CA.Raw)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01}, a.CA.Raw)
	f.Fuzz(func(t *testing.T, leafDER, caDER []byte) {
		leaf, err1 := x509.ParseCertificate(leafDER)
		ca, err2 := x509.ParseCertificate(caDER)
		if err1 != nil || err2 != nil {
			return
		}
		id, gotCA, err := verifyChain([]*x509.Certificate{leaf, ca}, testNow, x509.ExtKeyUsageClientAuth)
		if err != nil {
			return
		}
		if gotCA != ca || leaf.CheckSignatureFrom(ca) != nil || id.IsZero() {
			t.Fatalf("verifyChain accepted a chain whose leaf is not signed by its CA")
		}
	})
}

// TestNewIdentityPeerClockBehind: a device made a moment ago is accepted
// by a peer whose clock is days behind (a board that has not synced its
// clock yet), both ways.
func TestNewIdentityPeerClockBehind(t *testing.T) {
	behind := testNow.Add(-3 * 24 * time.Hour)
	S, C := newTestIdentity(t, "S"), newTestIdentity(t, "C")
	_, addr := startServer(t, Options{Identity: S, Pins: NewPins(C.ID), Now: fixedNow(behind)}, helloHandler(S))
	conf := ClientTLSConfig(Options{Identity: C, Pins: NewPins(S.ID), Now: fixedNow(behind)}, S.ID)
	if _, caller, err := tryHello(addr, conf); err != nil || caller != C.ID.String() {
		t.Errorf("hello between new devices, both clocks 3 days behind: %q, %v", caller, err)
	}
}
