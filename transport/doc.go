// Package transport owns device identity, the TLS policy, pinned-CA
// verification, and the listener and dialer that peers use. It knows nothing
// of the index, discovery or the sync engine; its only shared word is
// transport/deviceid.
//
// # Identity
//
// A device has a CA (ECDSA P-256, self-signed, 20 years) whose public key
// names it (deviceid.FromPublicKeyInfo of the CA's SubjectPublicKeyInfo) and a
// leaf (ECDSA P-256, one year, serverAuth and clientAuth) signed by it. Both
// live as PEM files in one directory (mode 0700): ca.crt, ca.key, device.crt,
// device.key (keys 0600, PKCS#8). RenewIfNeeded re-signs the leaf for the
// same leaf key, so a renewal replaces one file atomically (renameio) and a
// crash can never leave a key that does not match its certificate.
//
// # TLS policy
//
// Every connection is mutual TLS between pinned devices; each side presents
// [leaf, CA]. Peers are pinned by device ID only (no CA file on record), so
// certificates are not checked by crypto/tls's verifier: the server asks for
// any client certificate and the client skips the built-in verification, and
// both run the same checks in VerifyConnection (which also runs on resumed
// sessions): exactly two certificates of at most 8 KiB, a self-signed P-256
// CA, a non-CA P-256 leaf with both extended key usages that verifies
// against that CA at Options.Now, the CA's ID pinned (and, on a client, equal
// to the dialled ID), and the negotiated version and suite inside the policy.
// Clients hand over their chain with GetClientCertificate, which Go calls
// whatever acceptable CAs a server lists.
//
// Allowed: TLS 1.3 with TLS_AES_128_GCM_SHA256 or TLS_AES_256_GCM_SHA384, or
// TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 or ECDHE-ECDSA-AES256-GCM-SHA384;
// key exchange X25519MLKEM768, X25519 or P-256 (the other ML-KEM hybrids and
// P-384/P-521 are left out: fewer choices, and every syncd peer speaks the
// first). crypto/tls cannot drop ChaCha20 from TLS 1.3, so the server's
// GetConfigForClient predicts what crypto/tls would pick for the ClientHello
// (ChaCha20 whenever it is offered, unless the server has AES hardware and
// the client's first known suite is AES-GCM) and caps every ClientHello that
// would end on ChaCha20 at TLS 1.2, whose suite list is GCM-only. A client
// that prefers ChaCha20 but also speaks TLS 1.2 thus ends on
// ECDHE-ECDSA-AES-GCM; a TLS 1.3-only client that prefers (or only offers)
// ChaCha20 is refused. Both ends also refuse any other negotiated suite in
// VerifyConnection, as a second line.
//
// Session tickets are off and clients keep no session cache: every
// connection is a full handshake with fresh checks (connections are pooled,
// so this costs little: BenchmarkHandshake gives about 690 full mutual
// handshakes/s with X25519MLKEM768 on a loaded 2-core machine).
// Renegotiation is never accepted.
//
// # Listener and ALPN
//
// Server takes a plain TCP listener and does TLS itself: 3 s for the
// ClientHello, 10 s for the whole handshake, at most 8 concurrent
// handshakes and 32 connections per remote address, 1024 connections in
// all (the descriptors are the process's), 64 concurrent
// handshakes overall (a connection counts there from its ClientHello on,
// so silent sockets cannot lock peers out), 64 KiB of request headers and
// a 10 s ReadHeaderTimeout. An accept error other than a closed listener
// (out of descriptors, say) is logged once and retried with a backoff; it
// never stops the server. Failed handshakes are logged at debug level; an
// unknown device is logged once at info with its ID, so the user can pin it.
//
// ALPN "h2" and "http/1.1" carry the peer HTTP API. ALPN "syncd-pair/1" is a
// pairing attempt: while a pair handler is set such a ClientHello gets a
// config that accepts any well-formed device chain (same checks, no pin) and
// negotiates only "syncd-pair/1"; the connection goes to the handler and
// never reaches HTTP. Without a handler it is refused in the handshake.
//
// # HTTP version
//
// The server speaks both; Options.HTTP picks what a Client offers. The
// default (DefaultHTTPVersion) is HTTP/2, for sessions; bulk transfer goes
// faster over HTTP/1.1 (see the constant's comment for the figures). On
// HTTP/1.1 connections the TLS records of one large write leave in TCP
// writes of up to 256 KiB and the client reads in reads of up to 256 KiB
// (coalesce.go): per-record syscalls were a third of a bulk transfer's CPU.
// A Client has at most 4 handshakes with its peer in progress, half the
// server's per-address limit, so that a burst of new connections waits
// instead of being refused.
package transport
