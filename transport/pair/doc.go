// Package pair is the pairing protocol of syncd: a new device joins by typing
// a short one-time code, and both devices come out with the other's CA ID,
// proven by a PAKE (CPace, package cpace) bound to the TLS session the
// protocol runs in. It owns the code, the one-attempt policy and the wire
// format; it knows nothing of listeners, mDNS, the config or the pin store.
// The transport hands it a connection (any io.ReadWriter: in production the
// *tls.Conn that negotiated ALPN "syncd-pair/1") and the binding inputs; the
// caller pins the returned peer.
//
// # Roles
//
// The host shows the code (syncd pair) and is the TLS server; it is the
// CPace responder. The joiner types the code (syncd pair CODE), dials, and
// is the CPace initiator. Both present their own identity in TLS without
// pinning, so each sees the other's CA.
//
// # What is bound
//
//	PRS = the 8 code characters, upper case, no dash
//	sid = TLS exporter "EXPORTER-syncd-pair", no context, 32 bytes
//	CI  = lv_cat("syncd-pair/1", joiner CA ID, host CA ID)  (initiator first)
//	ADa = joiner's device name, ADb = host's device name
//
// Each side fills the IDs from what it saw in the handshake (Binding.Local,
// Binding.Peer) and the exporter from its own TLS session. Both keys
// therefore agree only if the code, both CA IDs, the TLS session and both
// names agree. A man in the middle who terminates TLS on both sides has two
// sessions with two exporters (and presents its own CAs), so even relaying
// every message and knowing nothing wrong, the keys differ, the
// confirmations fail on both sides, and nothing is pinned. Using the
// exporter as sid also makes every run's sid unique, as the draft wants.
//
// # Messages
//
// Every message is a frame: type (1 byte), payload length (2 bytes, big
// endian, at most MaxPayload = 512), payload. Shares are 32 bytes, tags 64
// bytes (HMAC-SHA-512), names at most MaxNameLen = 128 bytes of UTF-8
// without control or format characters. The flow is strictly lock-step:
//
//	1 hello    joiner -> host   Ya || joiner name
//	2 reply    host -> joiner   Yb || Tb || host name
//	3 confirm  joiner -> host   Ta
//	4 done     host -> joiner   Td = HMAC-SHA-512(ISK, "syncd-pair/1 host accepted")
//	0x7f error either way       reason (1 byte); the sender then stops
//
// Ta and Tb are the key confirmation tags of draft-irtf-cfrg-cpace section
// 10.4: mac_key = SHA-512("CPaceMac" || sid || ISK), Ta = HMAC(mac_key,
// lv_cat(Ya, ADa)), Tb = HMAC(mac_key, lv_cat(Yb, ADb)). The joiner always
// sends Ta, even when Tb did not verify: that is how the host learns that
// the code was wrong, and Ta reveals nothing that can be tested offline
// (computing the joiner's K for another password is a Diffie-Hellman
// problem). The host answers a bad Ta with error "wrong code"; a good one
// with done. Result: the host succeeds once Ta verified and done is sent;
// the joiner once Tb verified and done verified. A wrong code makes both
// fail with ErrWrongCode. Error reasons: 1 protocol, 2 busy, 3 expired,
// 4 used, 5 wrong code, 6 internal.
//
// # Why one attempt
//
// A code has 40 bits. CPace gives an active attacker exactly one password
// guess per run and nothing to test offline, so the only attack left is
// guessing online; with one attempt per code (as in Dmedia) that succeeds
// with probability 2^-40. The attempt starts when the host reads a
// well-formed hello: from then on the host has sent Tb, which is the
// attacker's guess checked, so whatever follows (success, wrong code,
// abort, timeout) uses the code up. Joiners arriving meanwhile get "busy",
// later ones "used" (ErrBurnt) or "expired"; the user runs syncd pair again.
// Connections that never send a well-formed hello (port scanners) do not
// use the code. The code also expires after Options.TTL (5 minutes).
package pair
