package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// syncthingSystem is two Syncthing instances, A sending and B receiving,
// configured like syncd: each other's static address, no discovery, no
// relays, no NAT traversal, no usage or crash reports, no upgrades.
//
// Their REST API listens on 127.0.0.1 (Syncthing 1.19 cannot listen on a
// unix socket); the harness calls it only after the data has arrived, and
// bytes on the wire are counted until the arrival, so the REST calls do not
// count as sync traffic.
type syncthingSystem struct {
	bin    string
	env    *runEnv
	home   [2]string
	ids    [2]string
	apiKey string
	proc   [2]*proc
	client [2]*http.Client
	base   [2]string // http://127.0.0.1:PORT of each REST API
}

func (s *syncthingSystem) Name() string { return "syncthing" }

var deviceIDLine = regexp.MustCompile(`Device ID: ([A-Z0-9]{7}(?:-[A-Z0-9]{7}){7})`)

// syncthingConfig is the whole config.xml of one instance (config version
// 36, Syncthing 1.19); what it leaves out takes Syncthing's defaults.
// fsWatcherDelayS is at its minimum of 1 s in every case (the default 10 s
// would dominate every case but the 2 GiB one); rescans are daily so that
// only the watcher notices changes; setLowPriority is off because the
// harness does not nice syncd either.
const syncthingConfig = `<configuration version="36">
    <folder id="bench" label="bench" path="{{path}}" type="sendreceive" rescanIntervalS="86400" fsWatcherEnabled="true" fsWatcherDelayS="1" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="{{idA}}" introducedBy=""></device>
        <device id="{{idB}}" introducedBy=""></device>
    </folder>
    <device id="{{idA}}" name="bench-a" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>tcp://127.0.0.1:{{portA}}</address>
        <autoAcceptFolders>false</autoAcceptFolders>
    </device>
    <device id="{{idB}}" name="bench-b" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>tcp://127.0.0.1:{{portB}}</address>
        <autoAcceptFolders>false</autoAcceptFolders>
    </device>
    <gui enabled="true" tls="false" debugging="false">
        <address>{{gui}}</address>
        <apikey>{{apikey}}</apikey>
    </gui>
    <options>
        <listenAddress>tcp://127.0.0.1:{{listen}}</listenAddress>
        <globalAnnounceServer>default</globalAnnounceServer>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <reconnectionIntervalS>5</reconnectionIntervalS>
        <relaysEnabled>false</relaysEnabled>
        <startBrowser>false</startBrowser>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <urSeen>3</urSeen>
        <urInitialDelayS>86400</urInitialDelayS>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <crashReportingEnabled>false</crashReportingEnabled>
        <setLowPriority>false</setLowPriority>
        <announceLANAddresses>false</announceLANAddresses>
    </options>
</configuration>
`

func (s *syncthingSystem) Start(ctx context.Context, env *runEnv) error {
	s.env = env
	var key [16]byte
	rand.Read(key[:])
	s.apiKey = hex.EncodeToString(key[:])
	folders := [2]string{env.Src, env.Dst}
	for i, name := range []string{"a", "b"} {
		s.home[i] = filepath.Join(env.Dir, "syncthing-"+name)
		// The device ID goes to stdout or stderr depending on the version.
		out, err := exec.CommandContext(ctx, s.bin, "generate", "--home="+s.home[i], "--no-default-folder", "--skip-port-probing").CombinedOutput()
		if err != nil {
			return fmt.Errorf("syncthing generate: %w: %s", err, bytes.TrimSpace(out))
		}
		m := deviceIDLine.FindSubmatch(out)
		if m == nil {
			out2, err := run(ctx, s.bin, "serve", "--home="+s.home[i], "--device-id")
			if err != nil {
				return err
			}
			m = [][]byte{nil, bytes.TrimSpace(out2)}
		}
		s.ids[i] = string(m[1])
		// The folder marker: without it Syncthing refuses the folder.
		if err := os.MkdirAll(filepath.Join(folders[i], ".stfolder"), 0o755); err != nil {
			return err
		}
	}
	for i := range 2 {
		gui := "127.0.0.1:" + strconv.Itoa(env.Port+2+i)
		cfg := syncthingConfig
		for k, v := range map[string]string{
			"{{path}}": folders[i], "{{idA}}": s.ids[0], "{{idB}}": s.ids[1],
			"{{portA}}": strconv.Itoa(env.Port), "{{portB}}": strconv.Itoa(env.Port + 1),
			"{{listen}}": strconv.Itoa(env.Port + i), "{{gui}}": gui, "{{apikey}}": s.apiKey,
		} {
			cfg = string(bytes.ReplaceAll([]byte(cfg), []byte(k), []byte(v)))
		}
		if err := os.WriteFile(filepath.Join(s.home[i], "config.xml"), []byte(cfg), 0o600); err != nil {
			return err
		}
		s.client[i] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
		s.base[i] = "http://" + gui
		p, err := startProc("syncthing "+"ab"[i:i+1], filepath.Join(s.home[i], "syncthing.log"),
			[]string{"STNODEFAULTFOLDER=1", "STNOUPGRADE=1", "STNORESTART=1", "HOME=" + s.home[i]},
			s.bin, "serve", "--home="+s.home[i], "--no-browser", "--no-restart", "--no-upgrade", "--logflags=3")
		if err != nil {
			return err
		}
		s.proc[i] = p
	}
	return waitFor(ctx, 90*time.Second, 100*time.Millisecond, "syncthing instances connected and idle", func() (bool, error) {
		for i := range 2 {
			if err := s.proc[i].exited(); err != nil {
				return false, err
			}
			var conns struct {
				Connections map[string]struct {
					Connected bool `json:"connected"`
				} `json:"connections"`
			}
			if err := s.get(ctx, i, "/rest/system/connections", &conns); err != nil {
				return false, err
			}
			if !conns.Connections[s.ids[1-i]].Connected {
				return false, nil
			}
			st, err := s.folderStatus(ctx, i)
			if err != nil {
				return false, err
			}
			if st.State != "idle" {
				return false, nil
			}
		}
		return true, nil
	})
}

// get calls the REST API of instance i and decodes the JSON answer.
func (s *syncthingSystem) get(ctx context.Context, i int, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", s.base[i]+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", s.apiKey)
	resp, err := s.client[i].Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("syncthing %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("syncthing %s: %w", path, err)
	}
	return nil
}

// syncthingFolder is the part of /rest/db/status the harness reads.
type syncthingFolder struct {
	State          string `json:"state"`
	NeedFiles      int64  `json:"needFiles"`
	NeedBytes      int64  `json:"needBytes"`
	NeedTotalItems int64  `json:"needTotalItems"`
	GlobalFiles    int64  `json:"globalFiles"`
}

func (s *syncthingSystem) folderStatus(ctx context.Context, i int) (*syncthingFolder, error) {
	var st syncthingFolder
	if err := s.get(ctx, i, "/rest/db/status?folder="+url.QueryEscape("bench"), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (s *syncthingSystem) Copy(context.Context) (time.Duration, error) { return 0, nil }

// Settled is B's folder idle with nothing needed.
func (s *syncthingSystem) Settled(ctx context.Context) (bool, error) {
	if err := s.proc[1].exited(); err != nil {
		return false, err
	}
	st, err := s.folderStatus(ctx, 1)
	if err != nil {
		return false, err
	}
	return st.NeedFiles == 0 && st.NeedBytes == 0 && st.NeedTotalItems == 0 && st.State == "idle", nil
}

func (s *syncthingSystem) Alive() error { return alive(s.proc[:]...) }

func (s *syncthingSystem) PIDs() []int {
	var out []int
	for _, p := range s.proc {
		if p != nil {
			out = append(out, p.pid())
		}
	}
	return out
}

func (s *syncthingSystem) Stop() error {
	var first error
	for _, p := range s.proc {
		if err := p.stop(); err != nil && first == nil {
			first = err
		}
	}
	for _, c := range s.client {
		if c != nil {
			c.CloseIdleConnections()
		}
	}
	return first
}

func (s *syncthingSystem) Logs() string {
	var b bytes.Buffer
	for _, p := range s.proc {
		b.WriteString(p.tail())
	}
	return b.String()
}
