package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEmptyConfigReload: config.toml truncated to 0 bytes (an
// editor that crashed or hit a full disk while saving, a '> config.toml'
// slip), then SIGHUP. syncd init never writes an empty config, so an empty
// file is a damaged one: it is refused with the running config kept.
// (Taken as "no peers, no folders", it unpinned every peer, dropped every
// folder and forgot its index.)
func TestEmptyConfigReload(t *testing.T) {
	a := newTestDevice(t, "alpha")
	dir := filepath.Join(t.TempDir(), "docs")
	a.addFolder("docs", dir)
	writeFile(t, filepath.Join(dir, "a.txt"), "hello\n", 0o644)
	a.start()
	waitFor(t, 20*time.Second, "folder docs idle with a.txt", func() string {
		f := a.folderStatus("docs")
		if f.State != "idle" || f.LocalFiles != 1 {
			return fmt.Sprintf("state %s, %d files", f.State, f.LocalFiles)
		}
		return ""
	})
	cfgPath := filepath.Join(a.home, "config.toml")
	if err := os.WriteFile(cfgPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a.hup()
	time.Sleep(2 * time.Second)
	r := a.status()
	if len(r.Folders) != 1 {
		t.Errorf("after SIGHUP with an empty config.toml the daemon runs %d folders (was 1); want the empty config refused and the running one kept\nlog:\n%s",
			len(r.Folders), lastLines(a.log.String(), 4))
	}
	if !strings.Contains(a.log.String(), "config not reloaded") {
		t.Errorf("no 'config not reloaded' line in the log after SIGHUP with an empty config.toml")
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
