package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConfigFIFOReload: config.toml replaced by a FIFO (a hand
// mistake, or a process substitution) and SIGHUP. The house rule: the
// reload is refused in one line, the running config stays, and the
// daemon stays responsive and stops on SIGTERM.
func TestConfigFIFOReload(t *testing.T) {
	a := newTestDevice(t, "alpha")
	a.start()
	cfg := filepath.Join(a.home, "config.toml")
	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	// Whatever happens, let a stuck open finish at the end (so that the
	// daemon can be stopped by the cleanup).
	t.Cleanup(func() {
		if f, err := os.OpenFile(cfg, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	a.hup()
	waitFor(t, 10*time.Second, "the refused reload in the log", func() string {
		if !strings.Contains(a.log.String(), "config not reloaded") {
			return "no 'config not reloaded' line in the log within 10 s of SIGHUP"
		}
		return ""
	})
}

// TestConfigFIFOStop: with config.toml a FIFO and a SIGHUP sent,
// SIGTERM must still stop the daemon (exit 0, within 10 s).
func TestConfigFIFOStop(t *testing.T) {
	a := newTestDevice(t, "alpha")
	a.start()
	cfg := filepath.Join(a.home, "config.toml")
	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(cfg, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	a.hup()
	time.Sleep(500 * time.Millisecond)
	st := a.signalAndWait(syscall.SIGTERM, 10*time.Second)
	if st == nil {
		t.Fatalf("syncd run did not exit within 10 s of SIGTERM after a SIGHUP with config.toml a FIFO")
	}
	if !st.Success() {
		t.Fatalf("syncd run after SIGTERM: %v", st)
	}
}

// TestConfigFIFOCommands: with config.toml a FIFO, the CLI
// commands that read it ('folder list', 'syncd run') must fail in one line
// within seconds, not hang.
func TestConfigFIFOCommands(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	bin := syncdBinary(t)
	if out, err := exec.Command(bin, "--home", home, "init", "--name", "a").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	cfg := filepath.Join(home, "config.toml")
	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"folder", "list"},
		{"run", "--discovery", "off", "--listen", freeAddr(t)},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cmd := exec.CommandContext(ctx, bin, append([]string{"--home", home}, args...)...)
		cmd.Env = harnessEnv()
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Errorf("syncd %s with config.toml a FIFO: still running after 5 s (killed); output %q", strings.Join(args, " "), out)
			continue
		}
		if err == nil || strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
			t.Errorf("syncd %s with config.toml a FIFO: err %v, output %q; want one line and a failure", strings.Join(args, " "), err, out)
		}
	}
}
