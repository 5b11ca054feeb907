package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigDirExitCode: a config.toml that is a directory (a
// 'mkdir' slip, a bind mount or a config management tool gone wrong) is a
// config that is wrong: restarting will not fix it. README: "A config that
// is wrong (run exits with code 78, which the unit does not restart...)".
// (It exited 1, so systemd restarted it every 10 s for ever, with advice
// that did not say what was wrong.)
func TestConfigDirExitCode(t *testing.T) {
	home := t.TempDir()
	var out, errb bytes.Buffer
	if code := realMain([]string{"--home", home, "init"}, &out, &errb); code != exitOK {
		t.Fatal(errb.String())
	}
	cfg := filepath.Join(home, "config.toml")
	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(cfg, 0o700); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	code := realMain([]string{"--home", home, "run", "--discovery", "off", "--listen", freeAddr(t)}, &out, &errb)
	if code != exitConfig {
		t.Errorf("syncd run with config.toml a directory = exit %d, stderr %q; want exit %d (a config restarting does not fix)",
			code, strings.TrimSpace(errb.String()), exitConfig)
	}
}
