package transport

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// File names of an identity inside its directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	DeviceCertFile = "device.crt"
	DeviceKeyFile  = "device.key"
)

// Validity periods of the certificates CreateIdentity and RenewIfNeeded make.
const (
	CALifetime   = 20 * 365 * 24 * time.Hour
	LeafLifetime = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so that a peer whose clock is behind
	// (a board without a real-time clock before it has synced, a laptop
	// set to the wrong day) still accepts a certificate made a moment ago:
	// pairing such a device with a new one failed with a bare "bad
	// certificate". The pin, not the date, is what is trusted.
	clockSkew = 7 * 24 * time.Hour
	// renewBackdate is how far back a renewed leaf is valid from.
	renewBackdate = clockSkew
	// maxIdentityFile bounds every identity file read from disk.
	maxIdentityFile = 64 << 10
)

// ErrNoIdentity is returned by LoadIdentity when the directory holds no
// identity at all (none of the four files exists).
var ErrNoIdentity = errors.New("no identity")

// ErrIdentityExists is returned by CreateIdentity when any identity file is
// already present; it never overwrites one.
var ErrIdentityExists = errors.New("identity already exists")

// Identity is this device's CA and its current leaf certificate.
//
// The device CA (ECDSA P-256, self-signed, 20 years) names the device: its ID
// is the SHA-256 of the CA's SubjectPublicKeyInfo. The leaf (ECDSA P-256, one
// year, ServerAuth and ClientAuth) is what TLS presents, with the CA as its
// chain: [leaf, CA].
type Identity struct {
	ID   deviceid.ID
	Name string
	CA   *x509.Certificate
	// Cert is the leaf, the CA chain and the leaf key. RenewIfNeeded replaces
	// it; code that may run concurrently with a renewal uses Certificate.
	Cert tls.Certificate

	dir   string
	caKey *ecdsa.PrivateKey

	mu sync.Mutex // guards Cert during RenewIfNeeded
}

// Certificate returns the current leaf chain. It is safe to call while
// RenewIfNeeded runs; the TLS configs of this package use it, so a renewed
// leaf is presented on the next handshake without restarting anything.
func (id *Identity) Certificate() *tls.Certificate {
	id.mu.Lock()
	defer id.mu.Unlock()
	c := id.Cert
	return &c
}

// Leaf returns the current leaf certificate.
func (id *Identity) Leaf() *x509.Certificate { return id.Certificate().Leaf }

// Dir returns the directory the identity was created in or loaded from.
func (id *Identity) Dir() string { return id.dir }

// CreateIdentity makes a new device CA and leaf under dir (created with mode
// 0700 if needed) and writes them as PEM files, keys with mode 0600. It
// refuses with ErrIdentityExists if any of the files is already there.
func CreateIdentity(dir, name string, now time.Time) (*Identity, error) {
	if len(name) > 256 {
		return nil, fmt.Errorf("create identity: name is %d bytes, at most 256", len(name))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create identity: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create identity: %w", err)
	}
	for _, f := range []string{CACertFile, CAKeyFile, DeviceCertFile, DeviceKeyFile} {
		p := filepath.Join(dir, f)
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("create identity: %s: %w", p, ErrIdentityExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("create identity: %w", err)
		}
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create identity: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "syncd device CA", Organization: []string{"syncd"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CALifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("create identity: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("create identity: CA certificate: %w", err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create identity: %w", err)
	}
	leafDER, err := signLeaf(ca, caKey, leafKey, name, now, now.Add(-clockSkew))
	if err != nil {
		return nil, fmt.Errorf("create identity: %w", err)
	}
	caKeyPEM, err := marshalKey(caKey)
	if err != nil {
		return nil, fmt.Errorf("create identity: %w", err)
	}
	leafKeyPEM, err := marshalKey(leafKey)
	if err != nil {
		return nil, fmt.Errorf("create identity: %w", err)
	}
	// Keys first, the CA certificate last but one: an interrupted create
	// leaves an incomplete identity that LoadIdentity reports by file name.
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{CAKeyFile, caKeyPEM, 0o600},
		{DeviceKeyFile, leafKeyPEM, 0o600},
		{CACertFile, pemCert(caDER), 0o644},
		{DeviceCertFile, pemCert(leafDER), 0o644},
	}
	for _, f := range files {
		if err := renameio.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return nil, fmt.Errorf("create identity: %w", err)
		}
	}
	return LoadIdentity(dir, now)
}

// LoadIdentity reads and checks the identity under dir. It returns an error
// wrapping ErrNoIdentity when none of the four files exists, and otherwise a
// clear error naming the file at fault: a missing file, bad PEM, a key that is
// not ECDSA P-256, a key that does not match its certificate, a CA that is not
// a self-signed CA, or a leaf not signed by the CA. An expired leaf is not an
// error (RenewIfNeeded replaces it); an expired CA is.
func LoadIdentity(dir string, now time.Time) (*Identity, error) {
	paths := map[string]string{}
	missing := 0
	for _, f := range []string{CACertFile, CAKeyFile, DeviceCertFile, DeviceKeyFile} {
		p := filepath.Join(dir, f)
		paths[f] = p
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			missing++
		}
	}
	if missing == 4 {
		return nil, fmt.Errorf("load identity from %s: %w", dir, ErrNoIdentity)
	}
	read := func(f string) ([]byte, error) {
		b, err := readBounded(paths[f])
		if err != nil {
			return nil, fmt.Errorf("load identity: %w", err)
		}
		return b, nil
	}
	caCertPEM, err := read(CACertFile)
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := read(CAKeyFile)
	if err != nil {
		return nil, err
	}
	leafCertPEM, err := read(DeviceCertFile)
	if err != nil {
		return nil, err
	}
	leafKeyPEM, err := read(DeviceKeyFile)
	if err != nil {
		return nil, err
	}
	id, err := parseIdentity(caCertPEM, caKeyPEM, leafCertPEM, leafKeyPEM, paths)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if now.After(id.CA.NotAfter) {
		return nil, fmt.Errorf("load identity: %s: device CA expired on %s; the device needs a new identity", paths[CACertFile], id.CA.NotAfter.Format(time.DateOnly))
	}
	id.dir = dir
	return id, nil
}

// parseIdentity checks the four PEM blobs; names maps file names to the paths
// used in error messages.
func parseIdentity(caCertPEM, caKeyPEM, leafCertPEM, leafKeyPEM []byte, names map[string]string) (*Identity, error) {
	ca, err := parseCertPEM(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", names[CACertFile], err)
	}
	if err := checkDeviceCA(ca); err != nil {
		return nil, fmt.Errorf("%s: %w", names[CACertFile], err)
	}
	caKey, err := parseKeyPEM(caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", names[CAKeyFile], err)
	}
	if !caKey.PublicKey.Equal(ca.PublicKey) {
		return nil, fmt.Errorf("%s: key does not match the certificate in %s", names[CAKeyFile], names[CACertFile])
	}
	leaf, err := parseCertPEM(leafCertPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", names[DeviceCertFile], err)
	}
	if err := checkLeafShape(leaf); err != nil {
		return nil, fmt.Errorf("%s: %w", names[DeviceCertFile], err)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("%s: not signed by the device CA in %s: %w", names[DeviceCertFile], names[CACertFile], err)
	}
	leafKey, err := parseKeyPEM(leafKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", names[DeviceKeyFile], err)
	}
	if !leafKey.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("%s: key does not match the certificate in %s", names[DeviceKeyFile], names[DeviceCertFile])
	}
	return &Identity{
		ID:    deviceid.FromPublicKeyInfo(ca.RawSubjectPublicKeyInfo),
		Name:  leafName(leaf),
		CA:    ca,
		Cert:  tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Raw}, PrivateKey: leafKey, Leaf: leaf},
		caKey: caKey,
	}, nil
}

// RenewIfNeeded signs a new leaf with the CA key when the current one has
// less than within left (or is already expired) and atomically replaces
// device.crt. The leaf key is kept, so only one file changes and a crash
// leaves either the old or the new certificate, never a mismatched pair. The
// device ID never changes. It is safe to call while servers use the
// identity.
func (id *Identity) RenewIfNeeded(now time.Time, within time.Duration) (renewed bool, err error) {
	cur := id.Certificate()
	if cur.Leaf.NotAfter.Sub(now) >= within && !now.Before(cur.Leaf.NotBefore) {
		return false, nil
	}
	if id.caKey == nil {
		return false, errors.New("renew leaf: identity has no CA key")
	}
	if now.After(id.CA.NotAfter) {
		return false, fmt.Errorf("renew leaf: device CA expired on %s", id.CA.NotAfter.Format(time.DateOnly))
	}
	leafKey, ok := cur.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return false, errors.New("renew leaf: leaf key is not ECDSA")
	}
	// The renewed leaf is valid from a week ago, as a new identity's: a
	// pinned peer whose clock runs behind accepted the old leaf, and must
	// not refuse this device from the moment it renews (renewal comes 30
	// days before the old leaf ends).
	from := now.Add(-renewBackdate)
	if from.Before(id.CA.NotBefore) {
		from = id.CA.NotBefore
	}
	der, err := signLeaf(id.CA, id.caKey, leafKey, id.Name, now, from)
	if err != nil {
		return false, fmt.Errorf("renew leaf: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return false, fmt.Errorf("renew leaf: %w", err)
	}
	if id.dir != "" {
		if err := renameio.WriteFile(filepath.Join(id.dir, DeviceCertFile), pemCert(der), 0o644); err != nil {
			return false, fmt.Errorf("renew leaf: %w", err)
		}
	}
	id.mu.Lock()
	id.Cert = tls.Certificate{Certificate: [][]byte{der, id.CA.Raw}, PrivateKey: leafKey, Leaf: leaf}
	id.mu.Unlock()
	return true, nil
}

// signLeaf makes a leaf for key, valid from notBefore until LeafLifetime
// after now but never past the CA.
func signLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, key *ecdsa.PrivateKey, name string, now, notBefore time.Time) ([]byte, error) {
	notAfter := now.Add(LeafLifetime)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	cn := name
	if cn == "" {
		cn = "syncd device"
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"syncd"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("sign leaf: %w", err)
	}
	return der, nil
}

// leafName recovers the device name CreateIdentity put in the leaf.
func leafName(leaf *x509.Certificate) string {
	if leaf.Subject.CommonName == "syncd device" {
		return ""
	}
	return leaf.Subject.CommonName
}

func randomSerial() *big.Int {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func marshalKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// readBounded reads a regular file of at most maxIdentityFile bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxIdentityFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxIdentityFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxIdentityFile)
	}
	return b, nil
}

// onePEM decodes exactly one PEM block of the given type; anything else in
// the file but whitespace is an error.
func onePEM(data []byte, typ ...string) (*pem.Block, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the PEM block")
	}
	for _, t := range typ {
		if block.Type == t {
			return block, nil
		}
	}
	return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, typ)
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, err := onePEM(data, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("bad certificate: %w", err)
	}
	return c, nil
}

// parseKeyPEM accepts a PKCS#8 ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY")
// ECDSA P-256 key.
func parseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, err := onePEM(data, "PRIVATE KEY", "EC PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	var k crypto.PrivateKey
	if block.Type == "EC PRIVATE KEY" {
		k, err = x509.ParseECPrivateKey(block.Bytes)
	} else {
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("bad private key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want ECDSA P-256", k)
	}
	if ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("private key is on %s, want P-256", ek.Curve.Params().Name)
	}
	return ek, nil
}
