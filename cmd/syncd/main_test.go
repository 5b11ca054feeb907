package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExitCodes(t *testing.T) {
	home := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		err  string // prefix of stderr
	}{
		{"help", []string{"help"}, exitOK, ""},
		{"-h", []string{"-h"}, exitOK, ""},
		{"no command", nil, exitUsage, "syncd: no command given; run 'syncd help' for usage\n"},
		{"unknown command", []string{"frob"}, exitUsage, "syncd: unknown command \"frob\"; "},
		{"bad global flag", []string{"--nope", "id"}, exitUsage, "syncd: flag provided but not defined: -nope; "},
		{"bad log level", []string{"--log-level", "loud", "id"}, exitUsage, "syncd: --log-level \"loud\" is not a level; "},
		{"bad log format", []string{"--log-format", "xml", "id"}, exitUsage, "syncd: --log-format \"xml\""},
		{"empty home", []string{"--home", "", "id"}, exitUsage, "syncd: --home is empty; give a directory, or leave --home out"},
		{"runtime error", []string{"--home", home, "id"}, exitFailure, "syncd: no identity in "},
		{"no daemon", []string{"--home", home, "status"}, exitFailure, "syncd: no syncd daemon is running for " + home + "; start it with 'syncd run'\n"},
		{"bad id", []string{"--home", home, "peer", "add", "x"}, exitUsage, "syncd: peer add: \"x\": invalid device ID"},
		{"sub help", []string{"--home", home, "folder", "add", "-h"}, exitOK, ""},
		{"path with a newline", []string{"--home", home, "folder", "add", "x", home + "/a\nb"}, exitUsage, "syncd: folder add: path "},
		{"peer help", []string{"peer", "help"}, exitOK, ""},
		{"interval without watch", []string{"--home", home, "status", "--interval", "5s"}, exitUsage, "syncd: status: --interval is the refresh interval of --watch; add --watch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := realMain(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("realMain(%q) = %d, want %d (stderr %q)", tc.args, code, tc.code, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), tc.err) {
				t.Errorf("realMain(%q) stderr = %q, want prefix %q", tc.args, stderr.String(), tc.err)
			}
			if tc.err != "" && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("realMain(%q) stderr = %q, want exactly one line", tc.args, stderr.String())
			}
			if tc.code == exitOK && stdout.Len() == 0 {
				t.Errorf("realMain(%q) printed no help", tc.args)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		pos   []string
		names []string
		addrs []string
		err   bool
	}{
		{"id first", []string{"ID", "--name", "n", "--addr", "a:1"}, []string{"ID"}, []string{"n"}, []string{"a:1"}, false},
		{"id last", []string{"--addr", "a:1", "--addr", "b:2", "ID"}, []string{"ID"}, nil, []string{"a:1", "b:2"}, false},
		{"id middle", []string{"--addr=a:1", "ID", "-name", "n", "X"}, []string{"ID", "X"}, []string{"n"}, []string{"a:1"}, false},
		{"double dash", []string{"--name", "n", "--", "--addr", "-x"}, []string{"--addr", "-x"}, []string{"n"}, nil, false},
		{"lone dash", []string{"-", "--name", "n"}, []string{"-"}, []string{"n"}, nil, false},
		{"missing value", []string{"ID", "--addr"}, nil, nil, nil, true},
		{"unknown flag", []string{"--bogus"}, nil, nil, nil, true},
		{"empty", nil, nil, nil, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlags("peer add")
			var names, addrs stringList
			fs.Var(&names, "name", "")
			fs.Var(&addrs, "addr", "")
			pos, err := parseArgs(globalFlags{Stdout: new(bytes.Buffer)}, fs, "peer add", tc.args)
			if (err != nil) != tc.err {
				t.Fatalf("parseArgs(%q) = %v, want error=%v", tc.args, err, tc.err)
			}
			if err != nil {
				var ue *usageError
				if !errors.As(err, &ue) {
					t.Errorf("parseArgs(%q) = %T, want *usageError", tc.args, err)
				}
				return
			}
			got := [][]string{pos, names, addrs}
			want := [][]string{tc.pos, tc.names, tc.addrs}
			if diff := cmp.Diff(want, got, cmpEmptyEqual); diff != "" {
				t.Errorf("parseArgs(%q) mismatch (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

var cmpEmptyEqual = cmp.Transformer("nilEmpty", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})

func TestParseArgsHelp(t *testing.T) {
	var out bytes.Buffer
	fs := newFlags("x")
	fs.String("name", "", "the name")
	_, err := parseArgs(globalFlags{Stdout: &out}, fs, "x [--name N]", []string{"-h"})
	if !errors.Is(err, errHelp) || helpOK(err) != nil {
		t.Fatalf("parseArgs(-h) = %v, want errHelp", err)
	}
	if !strings.Contains(out.String(), "usage: syncd x [--name N]") || !strings.Contains(out.String(), "the name") {
		t.Errorf("help output = %q", out.String())
	}
}

func TestReportError(t *testing.T) {
	cases := []struct {
		err  error
		want string
		code int
	}{
		{nil, "", exitOK},
		{errors.New("boom"), "syncd: boom; run 'syncd help' for usage\n", exitFailure},
		{withHint(errors.New("two\nlines\n"), "do\tthis"), "syncd: two lines; do this\n", exitFailure},
		{usageErr("peer add", "bad"), "syncd: peer add: bad; run 'syncd peer add -h' for usage\n", exitUsage},
		{withHint(&configError{File: "c.toml", Line: 3, Msg: "m"}, "outer hint"), "syncd: c.toml:3: m; outer hint\n", exitUsage},
		{&configError{File: "c.toml", Line: 3, Msg: "m"}, "syncd: c.toml:3: m; edit c.toml to fix it\n", exitUsage},
	}
	for _, tc := range cases {
		var b bytes.Buffer
		if code := reportError(&b, tc.err); code != tc.code || b.String() != tc.want {
			t.Errorf("reportError(%v) = %d %q, want %d %q", tc.err, code, b.String(), tc.code, tc.want)
		}
	}
	var b bytes.Buffer
	reportError(&b, errors.New(strings.Repeat("x", 5000)))
	if b.Len() > maxErrorLine+20 || strings.Count(b.String(), "\n") != 1 {
		t.Errorf("reportError(huge) = %d bytes, want one bounded line", b.Len())
	}
}

func TestProgressBar(t *testing.T) {
	cases := []struct {
		done, total int64
		want        string
	}{
		{0, 100, "[..........]   0%"},
		{50, 100, "[#####.....]  50%"},
		{100, 100, "[##########] 100%"},
		{150, 100, "[##########] 100%"},
		{-5, 100, "[..........]   0%"},
		{0, 0, "[##########] 100%"},
	}
	for _, tc := range cases {
		if got := progressBar(tc.done, tc.total, 10); got != tc.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

func TestRenderStatusEmpty(t *testing.T) {
	var b bytes.Buffer
	renderStatus(&b, &statusReport{Version: 1, Device: statusDevice{ShortID: "ABCDEFG"}}, time.Now())
	for _, want := range []string{"unnamed (ABCDEFG)", "not listening", "Peers (0)", "syncd peer add", "Folders (0)", "syncd folder add"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("renderStatus(empty) = %q, want it to contain %q", b.String(), want)
		}
	}
}

func TestWatchStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	n := 0
	fetch := func(context.Context) ([]byte, error) {
		n++
		if n == 3 {
			cancel()
		}
		if n == 2 {
			return nil, errNoDaemon
		}
		return []byte("view\n"), nil
	}
	if err := watchStatus(ctx, &out, true, time.Millisecond, fetch); err != nil {
		t.Fatalf("watchStatus = %v", err)
	}
	want := "\x1b[Hview\x1b[K\n\x1b[J" + "\x1b[Hsyncd: no syncd daemon is running (retrying)\x1b[K\n\x1b[J"
	if out.String() != want {
		t.Errorf("watchStatus output = %q, want %q", out.String(), want)
	}
}

// TestUnitKeepsConfigExit: the systemd unit does not restart after the
// exit code of a config mistake, and only that one: 2, how a Go program
// ends on a fatal error (a SIGBUS in the index's memory maps when its disk
// filled), left a crashed daemon down for good.
func TestUnitKeepsConfigExit(t *testing.T) {
	b, err := os.ReadFile("syncd.service")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RestartPreventExitStatus="); ok {
			got = append(got, v)
		}
	}
	if want := strconv.Itoa(exitConfig); len(got) != 1 || got[0] != want || exitConfig == exitUsage {
		t.Errorf("syncd.service RestartPreventExitStatus = %q, want [%s]", got, want)
	}
	var out, errb bytes.Buffer
	if code := realMain([]string{"--home", t.TempDir(), "run", "--bogus"}, &out, &errb); code != exitConfig {
		t.Errorf("syncd run --bogus = exit %d (%q), want %d", code, errb.String(), exitConfig)
	}
}
