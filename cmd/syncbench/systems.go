package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// system is one way of getting the source folder's content to the
// destination folder.
type system interface {
	// Name is the system's name in flags and tables.
	Name() string
	// Start sets up the sending and receiving side for env and returns when
	// both are ready (daemons connected, folders idle).
	Start(ctx context.Context, env *runEnv) error
	// Copy runs a one-shot transfer and returns the CPU time of the
	// commands it ran; daemons do nothing.
	Copy(ctx context.Context) (time.Duration, error)
	// Settled reports whether the receiving side has nothing left to do.
	Settled(ctx context.Context) (bool, error)
	// Alive returns an error if a process of the system has exited.
	Alive() error
	// PIDs are the long-running processes to measure: sender, receiver.
	PIDs() []int
	// Stop stops every process Start started, by PID.
	Stop() error
	// Logs returns the tail of each process's log, for failure reports.
	Logs() string
}

// runEnv is the directories and ports of one run.
type runEnv struct {
	Dir   string // everything of this run lives here
	Src   string // the sending folder
	Dst   string // the receiving folder
	Stage string // data is written here, then renamed into Src
	Port  int    // first of the ports this run may use (10 of them)
}

// allSystems are the systems in their default order.
var allSystems = []string{"syncd", "syncthing", "rsync", "cp"}

// newSystem returns the system called name.
func newSystem(name string, o *options) (system, error) {
	switch name {
	case "syncd":
		return &syncdSystem{bin: o.syncdBin}, nil
	case "syncthing":
		return &syncthingSystem{bin: o.syncthingBin}, nil
	case "rsync":
		return &rsyncSystem{bin: o.rsyncBin}, nil
	case "cp":
		return &cpSystem{}, nil
	}
	return nil, fmt.Errorf("unknown system %q (want one of %v)", name, allSystems)
}

// proc is a long-running process started by the harness.
type proc struct {
	name string
	log  string // path of its combined output
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its exit status; valid after done
}

// startProc starts argv with its output in logPath.
func startProc(name, logPath string, env []string, argv ...string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	// Its own process group: a Ctrl-C reaches the harness, which stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports an error if the process is no longer running.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d): %w: %v", p.name, p.pid(), errExited, p.err)
	default:
		return nil
	}
}

// stop sends SIGTERM to the PID, then SIGKILL after 15 s.
func (p *proc) stop() error {
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(15 * time.Second):
	}
	_ = syscall.Kill(p.pid(), syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for 15 s; killed", p.name, p.pid())
}

// tail returns the last lines of the process's log.
func (p *proc) tail() string {
	if p == nil {
		return ""
	}
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Sprintf("--- %s (%s) ---\n%s\n", p.name, p.log, b)
}

// run runs a short command and returns its standard output; its error
// includes standard error.
func run(ctx context.Context, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %v: %w: %s", filepath.Base(argv[0]), argv[1:], err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// runCPU runs a command to completion and returns its user+system time.
func runCPU(ctx context.Context, argv ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.ProcessState == nil {
		return 0, fmt.Errorf("%s: %w", filepath.Base(argv[0]), err)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if err != nil {
		return cpu, fmt.Errorf("%s %v: %w: %s", filepath.Base(argv[0]), argv[1:], err, bytes.TrimSpace(out.Bytes()))
	}
	return cpu, nil
}

// waitFor polls cond every interval until it returns true, an error, or
// the timeout passes.
func waitFor(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: not within %v: %w", what, timeout, last)
			}
			return fmt.Errorf("%s: not within %v", what, timeout)
		case <-time.After(interval):
		}
	}
}

// cpSystem is cp -a of the whole source folder: the floor.
type cpSystem struct{ env *runEnv }

func (s *cpSystem) Name() string                               { return "cp" }
func (s *cpSystem) Start(_ context.Context, env *runEnv) error { s.env = env; return nil }
func (s *cpSystem) Settled(context.Context) (bool, error)      { return true, nil }
func (s *cpSystem) Alive() error                               { return nil }
func (s *cpSystem) PIDs() []int                                { return nil }
func (s *cpSystem) Stop() error                                { return nil }
func (s *cpSystem) Logs() string                               { return "" }

func (s *cpSystem) Copy(ctx context.Context) (time.Duration, error) {
	return runCPU(ctx, "cp", "-a", s.env.Src+"/.", s.env.Dst+"/")
}

// rsyncSystem is rsync -a to an rsync daemon on 127.0.0.1: no encryption,
// no verification beyond rsync's own checksums, delta transfer on.
type rsyncSystem struct {
	bin    string
	env    *runEnv
	daemon *proc
}

func (s *rsyncSystem) Name() string { return "rsync" }

func (s *rsyncSystem) Start(ctx context.Context, env *runEnv) error {
	s.env = env
	home := filepath.Join(env.Dir, "rsyncd")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	conf := fmt.Sprintf(`port = %d
address = 127.0.0.1
use chroot = no
pid file = %s/rsyncd.pid
log file = %s/rsyncd.log
[dst]
    path = %s
    read only = false
    uid = 0
    gid = 0
`, env.Port, home, home, env.Dst)
	cf := filepath.Join(home, "rsyncd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return err
	}
	var err error
	s.daemon, err = startProc("rsync --daemon", filepath.Join(home, "out.log"), nil,
		s.bin, "--daemon", "--no-detach", "--config="+cf)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(env.Port))
	return waitFor(ctx, 20*time.Second, 20*time.Millisecond, "rsync daemon listening", func() (bool, error) {
		if err := s.daemon.exited(); err != nil {
			return false, err
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
}

func (s *rsyncSystem) Copy(ctx context.Context) (time.Duration, error) {
	return runCPU(ctx, s.bin, "-a", s.env.Src+"/", fmt.Sprintf("rsync://127.0.0.1:%d/dst/", s.env.Port))
}

func (s *rsyncSystem) Settled(context.Context) (bool, error) { return true, nil }

func (s *rsyncSystem) Alive() error { return alive(s.daemon) }

func (s *rsyncSystem) PIDs() []int {
	if s.daemon == nil {
		return nil
	}
	return []int{s.daemon.pid()}
}

func (s *rsyncSystem) Stop() error { return s.daemon.stop() }

func (s *rsyncSystem) Logs() string {
	b, _ := os.ReadFile(filepath.Join(s.env.Dir, "rsyncd", "rsyncd.log"))
	return s.daemon.tail() + string(b)
}

// errExited is returned when a daemon has exited while it should run.
var errExited = errors.New("exited")

// alive returns the first exited process's error.
func alive(ps ...*proc) error {
	for _, p := range ps {
		if p == nil {
			continue
		}
		if err := p.exited(); err != nil {
			return err
		}
	}
	return nil
}
