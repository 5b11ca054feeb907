package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startControl serves h on a socket in a new temp home and returns the
// paths and a stop function that waits for serveControl to return.
func startControl(t testing.TB, h http.Handler) (Paths, func() error) {
	t.Helper()
	return startControlLog(t, h, slog.New(slog.DiscardHandler))
}

// startControlLog is startControl with the server's log going to log.
func startControlLog(t testing.TB, h http.Handler, log *slog.Logger) (Paths, func() error) {
	t.Helper()
	paths, err := resolvePaths(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveControl(ctx, paths.Socket, h, log) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.Dial("unix", paths.Socket); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serveControl = %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("control socket never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var stopped bool
	var result error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return paths, stop
}

func TestControlRoundTrip(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statusReport{Version: statusVersion, Device: statusDevice{Name: "dev"}})
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusBadRequest, errors.New("config.toml:3: bad"))
	})
	paths, stop := startControl(t, mux)

	fi, err := os.Stat(paths.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	var r statusReport
	if err := callDaemon(paths, "GET", "/v1/status", nil, &r); err != nil {
		t.Fatalf("callDaemon(status) = %v", err)
	}
	if r.Device.Name != "dev" || r.Version != statusVersion {
		t.Errorf("callDaemon(status) = %+v, want device dev", r)
	}
	err = callDaemon(paths, "POST", "/v1/reload", map[string]int{"x": 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "config.toml:3: bad") || errors.Is(err, errNoDaemon) {
		t.Errorf("callDaemon(reload) = %v, want the daemon's error message", err)
	}
	if err := stop(); err != nil {
		t.Errorf("serveControl after cancel = %v, want nil", err)
	}
	if _, err := os.Lstat(paths.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after stop: Lstat = %v, want removed", err)
	}
	if err := callDaemon(paths, "GET", "/v1/status", nil, &r); !errors.Is(err, errNoDaemon) {
		t.Errorf("callDaemon after stop = %v, want errNoDaemon", err)
	}
	entries, _ := os.ReadDir(paths.Home)
	for _, e := range entries {
		t.Errorf("left behind in home: %s", e.Name())
	}
}

func TestCallDaemonNoDaemon(t *testing.T) {
	home := t.TempDir()
	paths, _ := resolvePaths(home)
	// No socket at all.
	err := callDaemon(paths, "GET", "/v1/status", nil, nil)
	if !errors.Is(err, errNoDaemon) {
		t.Fatalf("callDaemon(no socket) = %v, want errNoDaemon", err)
	}
	if want := "no syncd daemon is running for " + home; err.Error() != want {
		t.Errorf("callDaemon(no socket) = %q, want %q", err, want)
	}
	// A stale socket nobody listens on refuses connections.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: paths.Socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if err := callDaemon(paths, "GET", "/v1/status", nil, nil); !errors.Is(err, errNoDaemon) {
		t.Errorf("callDaemon(stale socket) = %v, want errNoDaemon", err)
	}
	// The home does not even exist.
	paths2, _ := resolvePaths(filepath.Join(home, "nope"))
	if err := callDaemon(paths2, "GET", "/v1/status", nil, nil); !errors.Is(err, errNoDaemon) {
		t.Errorf("callDaemon(no home) = %v, want errNoDaemon", err)
	}
}

func TestServeControlRemovesStaleSocket(t *testing.T) {
	home := t.TempDir()
	sock := filepath.Join(home, "syncd.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if err := removeStaleSocket(sock); err != nil {
		t.Fatalf("removeStaleSocket(stale) = %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket still there: %v", err)
	}
}

func TestServeControlRefuses(t *testing.T) {
	home := t.TempDir()
	regular := filepath.Join(home, "file.sock")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := serveControl(ctx, regular, http.NotFoundHandler(), slog.New(slog.DiscardHandler)); err == nil {
		t.Errorf("serveControl(regular file) = nil, want an error")
	}
	if _, err := os.Stat(regular); err != nil {
		t.Errorf("serveControl removed a regular file: %v", err)
	}
	long := filepath.Join(home, strings.Repeat("x", 120), "syncd.sock")
	if err := serveControl(ctx, long, http.NotFoundHandler(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("serveControl(long path) = %v, want a path length error", err)
	}
	// A live socket belongs to someone else: refuse, do not steal it.
	paths, _ := startControl(t, http.NotFoundHandler())
	if err := serveControl(ctx, paths.Socket, http.NotFoundHandler(), slog.New(slog.DiscardHandler)); err == nil {
		t.Errorf("serveControl(live socket) = nil, want an error")
	}
}

// TestControlServerErrorsLogged: what net/http reports on the control
// socket (here a handler's panic; in the field accept errors such as
// running out of descriptors) goes through the daemon's log as a warning,
// not raw to stderr.
func TestControlServerErrorsLogged(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	paths, stop := startControlLog(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("handler broke")
	}), log)
	if err := callDaemon(paths, "GET", "/v1/status", nil, nil); err == nil {
		t.Error("a request whose handler panicked succeeded")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "handler broke") {
		t.Errorf("the daemon's log = %q, want a warning with the server's error", out)
	}
}
