// Package index knows what every device has: a badger store of records,
// sequences and block locations, the scanner that chunks and hashes files,
// and the fsnotify watcher. It knows nothing of the network; the only other
// package of the module it imports is the transport/deviceid leaf.
//
// # Records
//
// A Record is one path on one device. Its encoding (EncodeRecord, used both
// in badger and on the wire) is CBOR, deterministic (core deterministic
// encoding), a map with small integer keys:
//
//	0 encoding version (1)   5 mtime (Unix ns)   10 version: [[device, value]...]
//	1 path                   6 deleted           11 sequence
//	2 kind (0 file, 1 dir, 2 symlink)            12 hashing protocol version
//	3 size                   7 symlink target    13 inode (local only)
//	4 mode (0o777 bits)      8 content ID (32 bytes, absent when zero)
//	                         9 blocks: [[size, hash]...]
//	14 ctime (Unix ns, local only)
//
// Zero values are omitted. Block offsets are implied: blocks are contiguous
// from offset 0. Unknown keys are ignored (room for additions); a different
// encoding version is an error. DecodeRecord bounds its input
// (MaxRecordBytes, MaxBlocks array elements, 64 map pairs, 8 nesting
// levels, no tags, no indefinite lengths, valid UTF-8) and never panics;
// Validate checks the structure of a decoded record.
//
// Hashing protocol v1 (chunking, block hashes, content IDs) lives in
// index/chunk and is re-exported here.
//
// # Footprint (measured on the 2-core project machine, quiet)
//
// Badger runs with small memtables (4 MiB) and tables (1 MiB), no caches
// and no compression (compression needs a block cache, and badger's caches
// and compactors wake every few milliseconds to seconds even when idle; the
// store compacts from its own write-driven loop, compact.go); the daemon
// adds an 80 MiB soft Go memory limit. With GOMEMLIMIT=80MiB
// (BenchmarkStoreFootprint, one-block file records):
//
//	records  on disk     peak RSS while inserting
//	100k      33.2 MiB   117 MiB (with ZSTD and an 8 MiB cache: 15.9 MiB, 110 MiB)
//	1M       ~330 MiB    (with ZSTD and an 8 MiB cache: 153 MiB, 392 MiB)
//
// Scans (BenchmarkScanRSS, 100k files of 1-64 KiB, separate process):
// first scan 4.3-5.2 s (about 22k files/s) with a peak of 93-94 MiB under the
// 80 MiB limit (162-177 MiB without it); unchanged rescan 0.78-0.95 s at
// 55-56 MiB. Chunk+hash of one 2 GiB file from page cache: 2.0-2.1 GB/s on
// both cores (BenchmarkHashFile, SYNCD_BENCH_BIG=1).
package index
