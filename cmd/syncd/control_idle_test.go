package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIdleControlConns: clients of the control socket that send one
// request and then keep the connection open (a script's HTTP client with
// keep-alive, a status poller that leaks its clients) are closed once
// idle, so that they cannot use up the daemon's descriptors and lock
// 'syncd status' out. (Kept for good before, they did.) (The daemon's descriptor limit
// is lowered to 256 here only to reach the limit with few clients; Go
// raises the soft limit to the hard one, so a real daemon has thousands.)
func TestIdleControlConns(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	bin := syncdBinary(t)
	if out, err := exec.Command(bin, "--home", home, "init", "--name", "a").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	log := &lockedBuffer{}
	cmd := exec.Command("/bin/sh", "-c", `ulimit -n 256 && exec "$@"`, "sh",
		bin, "--home", home, "run", "--listen", freeAddr(t), "--discovery", "off")
	cmd.Env = harnessEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	})
	paths, err := resolvePaths(home)
	if err != nil {
		t.Fatal(err)
	}
	status := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var r statusReport
		return callDaemonContext(ctx, paths, "GET", "/v1/status", nil, &r)
	}
	waitFor(t, 20*time.Second, "the daemon answers", func() string {
		if err := status(time.Second); err != nil {
			return err.Error()
		}
		return ""
	})
	// 300 clients, one request each, then idle.
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range 300 {
		c, err := net.DialTimeout("unix", paths.Socket, 2*time.Second)
		if err != nil {
			t.Logf("client %d: %v", i, err)
			break
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: syncd\r\n\r\n"); err != nil {
			t.Logf("client %d: write: %v", i, err)
			break
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Logf("client %d: no answer: %v (the daemon is out of descriptors)", i, err)
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.SetDeadline(time.Time{})
	}
	// Idle for longer than any request takes (the daemon's own header
	// timeout is 10 s): a server that closes idle clients has done so.
	time.Sleep(15 * time.Second)
	if err := status(5 * time.Second); err != nil {
		t.Errorf("after %d clients idled 15 s on the control socket, 'syncd status' fails: %v", len(conns), err)
	}
	if out, err := exec.Command("ls", fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)).Output(); err == nil {
		t.Logf("daemon holds %d descriptors", len(strings.Fields(string(out))))
	}
	_ = os.Stderr
}
