package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunBeforeInitExitCode: 'syncd run' on a home without its config or
// its identity (the unit enabled before 'syncd init', a config moved
// away) cannot succeed until the user acts: it exits 78, which the unit
// does not restart, not 1 (restarted every 10 s for ever).
func TestRunBeforeInitExitCode(t *testing.T) {
	t.Run("home without config", func(t *testing.T) {
		home := t.TempDir() // exists, nothing in it: init never ran
		var out, errb bytes.Buffer
		code := realMain([]string{"--home", home, "run", "--discovery", "off", "--listen", freeAddr(t)}, &out, &errb)
		if code != exitConfig {
			t.Errorf("syncd run on a home without config.toml = exit %d, stderr %q; want exit %d (restarting does not fix it; 'syncd init' does)",
				code, strings.TrimSpace(errb.String()), exitConfig)
		}
	})
	t.Run("home without identity", func(t *testing.T) {
		home := t.TempDir()
		var out, errb bytes.Buffer
		if code := realMain([]string{"--home", home, "init"}, &out, &errb); code != exitOK {
			t.Fatal(errb.String())
		}
		if err := os.RemoveAll(filepath.Join(home, "identity")); err != nil {
			t.Fatal(err)
		}
		errb.Reset()
		code := realMain([]string{"--home", home, "run", "--discovery", "off", "--listen", freeAddr(t)}, &out, &errb)
		if code != exitConfig {
			t.Errorf("syncd run on a home without identity = exit %d, stderr %q; want exit %d (restarting does not fix it)",
				code, strings.TrimSpace(errb.String()), exitConfig)
		}
	})
}

// TestRunOnMissingHomeSaysInit: 'syncd run' on a home that does not exist
// yet (--home to a new directory, or the default one before the first
// 'syncd init') says to run 'syncd init' first (it said to check the
// permissions, of the lock file it could not make) and exits 78.
func TestRunOnMissingHomeSaysInit(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(dir string) ([]string, []string)
	}{
		{"--home", func(dir string) ([]string, []string) {
			return []string{"--home", filepath.Join(dir, "new-home")}, nil
		}},
		{"XDG", func(dir string) ([]string, []string) {
			return nil, []string{"HOME=" + dir, "XDG_CONFIG_HOME=", "XDG_DATA_HOME=", "SYNCD_HOME="}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			global, env := tc.args(dir)
			for _, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			var out, errb bytes.Buffer
			code := realMain(append(global, "run", "--discovery", "off", "--listen", freeAddr(t)), &out, &errb)
			msg := strings.TrimSpace(errb.String())
			if !strings.Contains(msg, "syncd init") || strings.Contains(msg, "permissions") {
				t.Errorf("syncd run before init: stderr %q; want one line saying to run 'syncd init' first (not to check permissions)", msg)
			}
			if code != exitConfig {
				t.Errorf("syncd run before init = exit %d; want %d (the unit must not restart it for ever)", code, exitConfig)
			}
		})
	}
}
