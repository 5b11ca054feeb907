package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// ErrUnknownPeer is wrapped by handshake errors when the other side's device
// CA is not pinned (or, on a client, is not the device that was dialled).
var ErrUnknownPeer = errors.New("unknown peer")

// ErrBadChain is wrapped by handshake errors when the other side's
// certificates are not a well-formed, currently valid syncd device chain.
var ErrBadChain = errors.New("bad device certificate chain")

// ErrPolicy is wrapped when a connection negotiated a protocol version or
// cipher suite outside the TLS policy.
var ErrPolicy = errors.New("TLS policy violation")

// maxCertSize bounds each certificate of a peer's chain.
const maxCertSize = 8 << 10

// checkDeviceCA checks that c is a self-signed ECDSA P-256 CA.
func checkDeviceCA(c *x509.Certificate) error {
	if !c.IsCA || !c.BasicConstraintsValid {
		return errors.New("device CA certificate is not a CA")
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("device CA certificate lacks the certSign key usage")
	}
	if !isP256(c) {
		return errors.New("device CA key is not ECDSA P-256")
	}
	if !bytes.Equal(c.RawSubject, c.RawIssuer) {
		return errors.New("device CA certificate is not self-signed")
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		return fmt.Errorf("device CA certificate is not self-signed: %w", err)
	}
	return nil
}

// checkLeafShape checks what a leaf must be independently of time and CA.
func checkLeafShape(c *x509.Certificate) error {
	if c.IsCA {
		return errors.New("leaf certificate is a CA")
	}
	if !isP256(c) {
		return errors.New("leaf key is not ECDSA P-256")
	}
	var server, client bool
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			server = true
		case x509.ExtKeyUsageClientAuth:
			client = true
		}
	}
	if !server || !client {
		return errors.New("leaf certificate lacks the serverAuth and clientAuth extended key usages")
	}
	return nil
}

func isP256(c *x509.Certificate) bool {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	return ok && k.Curve == elliptic.P256()
}

// verifyChain checks that certs is exactly [leaf, device CA], that the leaf
// is valid at now and signed by the CA for usage, and returns the device ID
// of the CA. It does not look at pins.
func verifyChain(certs []*x509.Certificate, now time.Time, usage x509.ExtKeyUsage) (deviceid.ID, *x509.Certificate, error) {
	if len(certs) != 2 {
		return deviceid.ID{}, nil, fmt.Errorf("%w: %d certificates, want [leaf, CA]", ErrBadChain, len(certs))
	}
	leaf, ca := certs[0], certs[1]
	if len(leaf.Raw) > maxCertSize || len(ca.Raw) > maxCertSize {
		return deviceid.ID{}, nil, fmt.Errorf("%w: certificate larger than %d bytes", ErrBadChain, maxCertSize)
	}
	if err := checkDeviceCA(ca); err != nil {
		return deviceid.ID{}, nil, fmt.Errorf("%w: %w", ErrBadChain, err)
	}
	if err := checkLeafShape(leaf); err != nil {
		return deviceid.ID{}, nil, fmt.Errorf("%w: %w", ErrBadChain, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return deviceid.ID{}, nil, fmt.Errorf("%w: %w", ErrBadChain, err)
	}
	return deviceid.FromPublicKeyInfo(ca.RawSubjectPublicKeyInfo), ca, nil
}

// PeerID returns the device ID of the other side of a connection made with
// this package's TLS configs: the ID of the CA in its [leaf, CA] chain. Those
// configs verify the chain (and the pin) in VerifyConnection before any data
// flows, so a completed handshake's state is trustworthy; PeerID refuses
// states that did not complete or do not have that shape.
func PeerID(cs *tls.ConnectionState) (deviceid.ID, error) {
	if cs == nil || !cs.HandshakeComplete {
		return deviceid.ID{}, errors.New("peer ID: handshake not complete")
	}
	if len(cs.PeerCertificates) != 2 {
		return deviceid.ID{}, fmt.Errorf("peer ID: %w: %d certificates", ErrBadChain, len(cs.PeerCertificates))
	}
	return deviceid.FromPublicKeyInfo(cs.PeerCertificates[1].RawSubjectPublicKeyInfo), nil
}
