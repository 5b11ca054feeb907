package main

// The control API: HTTP/1.1 over a unix socket in the home (Paths.Socket),
// mode 0600, served by 'syncd run' and used by status, pair and the config
// commands. Requests and responses are JSON. An error response has a 4xx or
// 5xx status and the body {"error": "what went wrong"}; callDaemon turns it
// into a Go error. Endpoints (served by run.go):
//
//	GET  /v1/status   statusReport (status.go)
//	POST /v1/reload   reread config.toml (as SIGHUP does); 204 or an error

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// maxControlResponse bounds a response body read from the socket.
const maxControlResponse = 16 << 20

// errNoDaemon is wrapped when no daemon serves the home's control socket.
var errNoDaemon = errors.New("no syncd daemon is running")

// noDaemonError names the home without a daemon.
type noDaemonError struct{ home string }

func (e *noDaemonError) Error() string        { return fmt.Sprintf("%v for %s", errNoDaemon, e.home) }
func (e *noDaemonError) Hint() string         { return "start it with 'syncd run'" }
func (e *noDaemonError) Is(target error) bool { return target == errNoDaemon }

// serveControl serves h over HTTP on a unix socket at sockPath until ctx is
// cancelled, then shuts down gracefully (5 s at most) and removes the
// socket. The socket is created with mode 0600 before it becomes visible at
// sockPath (it is bound in a private 0700 directory, then renamed), and only
// processes of the same user (or root) may talk to it. A stale socket left
// by a crashed daemon is removed; a live one is an error (callers hold the
// daemon lock first, so that means a daemon from another home lock). What
// net/http itself reports (accept errors such as running out of
// descriptors, a handler's panic) goes to log as warnings.
func serveControl(ctx context.Context, sockPath string, h http.Handler, log *slog.Logger) error {
	if len(sockPath) > maxSocketPath {
		return withHint(fmt.Errorf("control socket path %s is %d bytes, longer than the %d a unix socket allows", sockPath, len(sockPath), maxSocketPath),
			"use a shorter --home")
	}
	if err := removeStaleSocket(sockPath); err != nil {
		return err
	}
	tmpDir, err := shortTempDir(filepath.Dir(sockPath))
	if err != nil {
		return withHint(fmt.Errorf("control socket: %w", err), "check the permissions of "+filepath.Dir(sockPath))
	}
	defer os.RemoveAll(tmpDir)
	tmpPath := filepath.Join(tmpDir, "s")
	if len(tmpPath) > maxSocketPath {
		return withHint(fmt.Errorf("control socket path %s is too long for a unix socket", tmpPath), "use a shorter --home")
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpPath, Net: "unix"})
	if err != nil {
		return withHint(fmt.Errorf("control socket: %w", err), "check the permissions of "+filepath.Dir(sockPath))
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Rename(tmpPath, sockPath); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	defer os.Remove(sockPath)

	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// A client that keeps its connection open between requests holds a
		// descriptor; enough of them would lock `syncd status` out.
		IdleTimeout:    10 * time.Second,
		MaxHeaderBytes: 64 << 10,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sameUserListener{ln}) }()
	select {
	case err := <-served:
		return fmt.Errorf("control socket: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	<-served
	return nil
}

// shortTempDir makes a private directory DIR/.sNNNNNN: with "/s" after it,
// it is no longer than DIR/syncd.sock, so the temporary socket path fits
// whenever the final one does.
func shortTempDir(dir string) (string, error) {
	for range 100 {
		p := filepath.Join(dir, fmt.Sprintf(".s%06d", mrand.IntN(1000000)))
		err := os.Mkdir(p, 0o700)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	return "", errors.New("could not make a temporary directory")
}

// removeStaleSocket removes a socket at path that nobody answers on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return withHint(fmt.Errorf("control socket: %s exists and is not a socket", path), "move that file away")
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return withHint(fmt.Errorf("control socket %s: another daemon answers on it", path), "stop the other daemon first")
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket: remove stale %s: %w", path, err)
	}
	return nil
}

// sameUserListener closes connections from other users (except root).
// The socket's mode already keeps them out; this is the second fence.
type sameUserListener struct{ *net.UnixListener }

func (l sameUserListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if peerIsSameUser(c) {
			return c, nil
		}
		c.Close()
	}
}

func peerIsSameUser(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return false
	}
	return cred.Uid == uint32(os.Getuid()) || cred.Uid == 0
}

// controlClient returns an HTTP client whose every request goes to the
// unix socket at sockPath (the URL's host is ignored; use "http://syncd").
// It has no overall timeout: long requests (pairing) are allowed; bound
// them with the request's context.
func controlClient(sockPath string) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sockPath)
		},
		DisableCompression:    true,
		MaxIdleConns:          1,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}}
}

// callTimeout bounds one callDaemon request.
const callTimeout = 30 * time.Second

// callDaemon sends a JSON request to the daemon of paths and decodes the
// JSON response into out (unless out is nil). body, if not nil, is encoded
// as JSON. It returns an error wrapping errNoDaemon when no daemon listens,
// and the daemon's {"error": ...} message on an error status.
func callDaemon(paths Paths, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return callDaemonContext(ctx, paths, method, path, body, out)
}

// callDaemonContext is callDaemon with a caller's context.
func callDaemonContext(ctx context.Context, paths Paths, method, path string, body, out any) error {
	if len(paths.Socket) > maxSocketPath {
		// No daemon can serve this home (serveControl refuses it).
		return &socketTooLongError{noDaemonError{home: paths.Home}, paths.Socket}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("control request %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://syncd"+path, rd)
	if err != nil {
		return fmt.Errorf("control request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := controlClient(paths.Socket)
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		if isNoDaemon(err) {
			return &noDaemonError{home: paths.Home}
		}
		return withHint(fmt.Errorf("talk to the daemon (%s %s): %w", method, path, err), "check the daemon's log")
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxControlResponse+1))
	if err != nil {
		return withHint(fmt.Errorf("read the daemon's answer (%s %s): %w", method, path, err), "check the daemon's log")
	}
	if len(data) > maxControlResponse {
		return fmt.Errorf("the daemon's answer to %s %s is larger than %d bytes", method, path, maxControlResponse)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		return withHint(fmt.Errorf("daemon: %s %s: %s (%s)", method, path, msg, resp.Status), "check the daemon's log")
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return withHint(fmt.Errorf("the daemon's answer to %s %s: %w", method, path, err),
				"make sure 'syncd' and the running daemon are the same version")
		}
	}
	return nil
}

// socketTooLongError: no daemon can ever listen on the home's socket.
type socketTooLongError struct {
	noDaemonError
	sock string
}

func (e *socketTooLongError) Error() string {
	return fmt.Sprintf("%v: its control socket path %s is %d bytes, more than a unix socket allows (%d)", e.noDaemonError.Error(), e.sock, len(e.sock), maxSocketPath)
}
func (e *socketTooLongError) Hint() string { return "use a shorter --home" }

// isNoDaemon reports whether a dial error means nobody serves the socket.
func isNoDaemon(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR)
}

// writeJSON writes v as a JSON response with status code (for run.go's
// control handlers).
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

// writeJSONError writes {"error": err} with status code.
func writeJSONError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
