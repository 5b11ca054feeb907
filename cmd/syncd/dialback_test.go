package main

import (
	"path/filepath"
	"testing"
)

// TestDaemonDialsBackAPeerWithoutAddress: beta knows no address of alpha
// (as after pairing with --addr on beta's side only); alpha dials beta, tells
// its listening port in hello, and beta dials back, so that changes flow
// both ways.
func TestDaemonDialsBackAPeerWithoutAddress(t *testing.T) {
	t.Parallel()
	a, b := newTestDevice(t, "alpha"), newTestDevice(t, "beta")
	a.pin(b)
	b.mustSyncd("peer", "add", a.id, "--name", a.name) // no --addr
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	a.addFolder("f", dirA, b)
	b.addFolder("f", dirB, a)
	a.start()
	b.start()
	waitConnected(t, b, a) // only possible by dialling back
	writeFile(t, filepath.Join(dirA, "from-alpha.txt"), "hello beta\n", 0o644)
	writeFile(t, filepath.Join(dirB, "from-beta.txt"), "hello alpha\n", 0o644)
	waitSameTrees(t, dirA, dirB, "from-alpha.txt", "from-beta.txt")
}
