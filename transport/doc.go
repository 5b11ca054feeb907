// Package transport owns device identity, the TLS policy, pinned-CA
// verification, and the listener and dialer that peers use. It knows nothing
// of the index, discovery or the sync engine.
package transport
