package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// syncdSystem is two syncd daemons, A sending and B receiving, pinned to
// each other with static addresses and discovery off.
type syncdSystem struct {
	bin  string
	env  *runEnv
	home [2]string
	proc [2]*proc
}

func (s *syncdSystem) Name() string { return "syncd" }

func (s *syncdSystem) Start(ctx context.Context, env *runEnv) error {
	s.env = env
	var ids [2]string
	for i, name := range []string{"a", "b"} {
		s.home[i] = filepath.Join(env.Dir, "syncd-"+name)
		out, err := run(ctx, s.bin, "--home", s.home[i], "init", "--name", "bench-"+name)
		if err != nil {
			return err
		}
		lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
		ids[i] = string(bytes.TrimSpace(lines[len(lines)-1]))
		if ids[i] == "" {
			return fmt.Errorf("syncd init printed no device ID")
		}
	}
	folders := [2]string{env.Src, env.Dst}
	for i := range 2 {
		j := 1 - i
		addr := "127.0.0.1:" + strconv.Itoa(env.Port+j)
		if _, err := run(ctx, s.bin, "--home", s.home[i], "peer", "add", ids[j], "--name", "bench-"+"ab"[j:j+1], "--addr", addr); err != nil {
			return err
		}
		if _, err := run(ctx, s.bin, "--home", s.home[i], "folder", "add", "bench", folders[i], "--peer", ids[j]); err != nil {
			return err
		}
	}
	for i, name := range []string{"a", "b"} {
		p, err := startProc("syncd "+name, filepath.Join(s.home[i], "daemon.log"), nil,
			s.bin, "--home", s.home[i], "run", "--listen", "127.0.0.1:"+strconv.Itoa(env.Port+i), "--discovery", "off")
		if err != nil {
			return err
		}
		s.proc[i] = p
	}
	return waitFor(ctx, 60*time.Second, 50*time.Millisecond, "syncd daemons connected and idle", func() (bool, error) {
		for i := range 2 {
			if err := s.proc[i].exited(); err != nil {
				return false, err
			}
			st, err := s.status(ctx, i)
			if err != nil {
				return false, err
			}
			if len(st.Peers) != 1 || !st.Peers[0].Connected || len(st.Folders) != 1 || st.Folders[0].State != "idle" {
				return false, nil
			}
		}
		return true, nil
	})
}

// syncdStatus is the part of 'syncd status --json' the harness reads.
type syncdStatus struct {
	Peers []struct {
		Connected bool `json:"connected"`
	} `json:"peers"`
	Folders []struct {
		State       string `json:"state"`
		NeedFiles   int64  `json:"need_files"`
		NeedDirs    int64  `json:"need_dirs"`
		NeedDeletes int64  `json:"need_deletes"`
		NeedBytes   int64  `json:"need_bytes"`
		LocalFiles  int64  `json:"local_files"`
	} `json:"folders"`
}

func (s *syncdSystem) status(ctx context.Context, i int) (*syncdStatus, error) {
	out, err := run(ctx, s.bin, "--home", s.home[i], "status", "--json")
	if err != nil {
		return nil, err
	}
	var st syncdStatus
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("syncd status --json: %w", err)
	}
	return &st, nil
}

func (s *syncdSystem) Copy(context.Context) (time.Duration, error) { return 0, nil }

// Settled is B's folder idle with nothing needed.
func (s *syncdSystem) Settled(ctx context.Context) (bool, error) {
	if err := s.proc[1].exited(); err != nil {
		return false, err
	}
	st, err := s.status(ctx, 1)
	if err != nil {
		return false, err
	}
	if len(st.Folders) != 1 {
		return false, fmt.Errorf("syncd b reports %d folders", len(st.Folders))
	}
	f := st.Folders[0]
	return f.NeedFiles+f.NeedDirs+f.NeedDeletes == 0 && f.NeedBytes == 0 && f.State == "idle", nil
}

func (s *syncdSystem) Alive() error { return alive(s.proc[:]...) }

func (s *syncdSystem) PIDs() []int {
	var out []int
	for _, p := range s.proc {
		if p != nil {
			out = append(out, p.pid())
		}
	}
	return out
}

func (s *syncdSystem) Stop() error {
	var first error
	for _, p := range s.proc {
		if err := p.stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *syncdSystem) Logs() string {
	var b bytes.Buffer
	for _, p := range s.proc {
		b.WriteString(p.tail())
	}
	return b.String()
}
