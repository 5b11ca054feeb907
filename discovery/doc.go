// Package discovery answers where a device can be reached: mDNS announce and
// browse, static addresses, and the address book. It knows nothing of TLS,
// the index or the sync engine.
package discovery
