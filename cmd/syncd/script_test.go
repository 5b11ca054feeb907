package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(removeBinaryAfter{m}, map[string]func(){
		"syncd": func() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) },
		// syncd-fake-daemon serves a canned status on $SYNCD_HOME's control
		// socket until interrupted: it stands in for 'syncd run' (run.go).
		"syncd-fake-daemon": fakeDaemonMain,
	})
}

// removeBinaryAfter runs the tests, then removes the syncd binary that
// syncdBinary built for them (a crashed run's is removed by the next).
type removeBinaryAfter struct{ m *testing.M }

func (r removeBinaryAfter) Run() int {
	code := r.m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	return code
}

// TestScripts runs testdata/script/*.txtar: the CLI contract.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// The scripts set --home or HOME themselves; never the real one.
			env.Setenv("HOME", filepath.Join(env.WorkDir, "nohome"))
			env.Setenv("SYNCD_HOME", "")
			env.Setenv("XDG_CONFIG_HOME", "")
			env.Setenv("XDG_DATA_HOME", "")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"lastline": cmdLastLine,
			"envfile":  cmdEnvFile,
			"waitsock": cmdWaitSock,
		},
	})
}

// lastline SRC DST writes the last line of SRC to DST.
func cmdLastLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: lastline SRC DST")
	}
	lines := strings.Split(strings.TrimRight(ts.ReadFile(args[0]), "\n"), "\n")
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(lines[len(lines)-1]+"\n"), 0o600))
}

// envfile NAME FILE sets $NAME to the content of FILE, trimmed.
func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile NAME FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}

// waitsock PATH waits up to 10 s for a unix socket at PATH to accept.
func cmdWaitSock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitsock PATH")
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", ts.MkAbs(args[0])); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.Fatalf("nothing listens on %s", args[0])
}

// fakeStatus is what syncd-fake-daemon reports; times are relative to now
// so that the human view is stable.
func fakeStatus(now time.Time) statusReport {
	return statusReport{
		Version: statusVersion,
		Device: statusDevice{
			ID: idA, ShortID: idA[:7], Name: "alpha", Listen: []string{"127.0.0.1:22027"},
			Discovery: "off", Started: now.Add(-3 * time.Hour), SendLimit: 10_000_000,
		},
		Peers: []statusPeer{
			{ID: idB, ShortID: idB[:7], Name: "beta", Connected: true, Address: "127.0.0.1:40000", Direction: "outbound", Since: now.Add(-5 * time.Minute)},
			{ID: idC, ShortID: idC[:7], Name: "gamma", LastSeen: now.Add(-50 * time.Hour), Address: "127.0.0.1:40001",
				Error: &statusIssue{Message: "presented an unexpected certificate", Action: "re-pair with 'syncd pair'"}},
		},
		Folders: []statusFolder{
			{ID: "photos", Path: "/data/photos", State: folderSyncing, LocalFiles: 10, LocalBytes: 5_000_000,
				GlobalFiles: 12, GlobalBytes: 10_000_000, NeedFiles: 2, NeedDirs: 1, NeedDeletes: 3, NeedBytes: 5_000_000,
				RecvRate: 1_200_000, Conflicts: 1, Peers: []string{idB}, LastSynced: now.Add(-90 * time.Second)},
			{ID: "videos", Path: "/data/videos", State: folderIdle, LocalFiles: 3, LocalBytes: 3_000_000_000, GlobalFiles: 3, GlobalBytes: 3_000_000_000,
				Counting: true, CaseClashes: 2, BadNames: 3, Peers: []string{idB}, LastSynced: now.Add(-5 * time.Second)},
			{ID: "docs", Path: "/data/docs", State: folderError, Peers: []string{idB, idC},
				Error: &statusIssue{Message: "folder path missing: /data/docs", Action: "create it, or remove the folder with 'syncd folder remove docs'"}},
			{ID: "music", Path: "/data/music", State: folderIdle, Counting: true, Peers: []string{idB}},
		},
	}
}

func fakeDaemonMain() {
	paths, err := resolvePaths(os.Getenv("SYNCD_HOME"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, fakeStatus(time.Now()))
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if _, err := loadConfig(paths.Config); err != nil {
			writeJSONError(w, http.StatusBadRequest, err)
			return
		}
		fmt.Fprintln(os.Stderr, "fake daemon: reloaded")
		w.WriteHeader(http.StatusNoContent)
	})
	if err := serveControl(ctx, paths.Socket, mux, slog.Default()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
