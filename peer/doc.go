// Package peer is the sync engine: per-peer sessions that exchange index
// deltas, the puller that fetches content by hash, the server of blocks and
// the conflict rules. It builds on transport, discovery and index, and knows
// nothing of the command line or the config file.
package peer
