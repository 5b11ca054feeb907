// Package discovery answers where a device can be reached: mDNS announce and
// browse, static addresses, and the address book. It knows nothing of TLS,
// the index or the sync engine; everything it learns is a hint that the TLS
// handshake must prove. It imports only transport/deviceid from syncd.
//
// # Address book
//
// Book maps a device ID to addresses, each with its source: static addresses
// (`syncd peer add ID --addr HOST:PORT`; the host may be a DNS name, resolved
// at dial time) never expire; mDNS addresses expire when not seen for
// Options.Expiry (5 minutes). Lookup lists static addresses first, then mDNS
// ones, newest first. Subscribers learn which device changed, coalesced and
// without ever blocking the book. The book is bounded (MaxMDNSDevices,
// MaxAddrs) because anyone on the LAN can announce; when it is full, the
// device seen least recently makes room, never one of Options.Keep (the
// daemon's pinned peers), so a flood of made-up devices cannot push a
// pinned peer's address out.
//
// # What is announced
//
// MDNS runs one hashicorp/mdns responder per chosen interface (MDNSOptions.
// Ifaces; default every interface that is up, multicast-capable, not loopback
// and has an address). It answers questions for the DNS-SD service type
// _syncd._tcp.local with:
//
//	PTR _syncd._tcp.local.            -> <name>-<SHORTID>._syncd._tcp.local.
//	SRV <name>-<SHORTID>._syncd._tcp  -> syncd-<shortid>.local.:<listen port>
//	TXT "id=<full device ID>" "v=1" [extra strings, e.g. "pair=1"]
//	A/AAAA syncd-<shortid>.local.     -> the interface's own addresses
//
// <name> is the device name reduced to letters, digits and '-' (at most 40
// bytes); the short ID keeps two laptops called "laptop" apart. Addresses and
// host name are set explicitly, so no hostname lookup is needed. Records
// carry a 120 s TTL. The library never announces unsolicited and answers by
// unicast to the asker.
//
// # When it browses
//
// A browse is one PTR query for _syncd._tcp.local per interface (over IPv4
// when the interface has IPv4, else IPv6), listening 1 s for unicast answers:
//
//   - at start, and whenever the set of interface addresses changes
//     (interfaces are listed every 5 s; that costs syscalls, no packet);
//     each such browse also sends one "hello" question,
//     _<shortid>._sub._syncd._tcp.local, which no one answers: another
//     syncd daemon that hears it browses 100 ms later (at most once per
//     2 s), so a new device is found in a few hundred milliseconds instead
//     of at the next periodic browse;
//   - 5 s after the previous browse ended during the first minute, then
//     30 s after (MDNSOptions.Browse): about 10 and then 2 browses a minute.
//
// Answers whose TXT id is not a valid device ID, answers for other service
// types, our own answers and (with MDNSOptions.Want) unwanted devices are
// ignored. Foreign packets that the library cannot parse (python-zeroconf's
// NSEC records, for one) are dropped by it; its log lines go to the slog
// logger at debug level only.
//
// # Multicast cost on a home network
//
// Per idle daemon and interface, with N syncd daemons on the link, after the
// first minute: 2 multicast queries (77-byte frames) per minute plus one
// unicast answer (265-byte frame with a 6-character name) to each of the
// other daemons' queries, 2×(N-1) per minute: 2N packets per minute, about
// 0.3 kB/min per daemon pair. Measured with N=2 in network namespaces:
// exactly 4 packets in 60 s (2 queries, 2 answers) from one daemon, counted
// with tshark on its veth. During the first minute about 10 queries and 10
// answers per other daemon (measured 18 packets in the first 60 s), plus
// one hello per interface at start; each other daemon answers the hello with
// one extra browse. `--discovery off` means this package is never started:
// nothing is sent or received.
//
// # Measured (network namespaces, this machine)
//
// From exec of a daemon to it being in the book of a daemon already running
// on the link: median ~0.3 s (10 runs, three runs 277/287/330 ms); to the
// new daemon finding the running one: median ~0.1 s (94/126/251 ms).
// See BenchmarkNetnsDiscoveryLatency and BenchmarkNetnsIdlePackets.
package discovery
