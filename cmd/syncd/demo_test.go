package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs demo.sh (what make demo runs) with the binary the tests
// build: two daemons on 127.0.0.1 sync a sample folder and an edit comes
// back. It fails if the files do not arrive byte for byte, or the edit
// does not come back; its output is printed then.
func TestDemo(t *testing.T) {
	bin := syncdBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "demo.sh")
	cmd.Env = append(os.Environ(), "BIN="+bin)
	// On the timeout, TERM: the script's trap stops its daemons by PID.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "all files arrived") {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
}
