package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// statusReport is the answer to GET /v1/status on the control socket and
// the output of 'syncd status --json'. It is a stable, documented format:
// fields are only ever added (with omitempty/omitzero where absent makes
// sense), never renamed or removed, and Version changes only if a meaning
// changes. Sizes are bytes, rates bytes per second, times RFC 3339.
//
//	{
//	  "version": 1,
//	  "device": {"id": "MFZWI3D-...", "short_id": "MFZWI3D", "name": "laptop",
//	             "listen": ["127.0.0.1:22027"], "discovery": "off",
//	             "started": "2026-01-02T15:04:05Z"},
//	  "peers": [{"id": "...", "short_id": "...", "name": "desktop",
//	             "connected": true, "address": "192.168.1.20:22027",
//	             "direction": "outbound", "since": "...", "last_seen": "..."}],
//	  "folders": [{"id": "photos", "path": "/home/me/Photos",
//	               "state": "syncing", "local_files": 10, "local_bytes": 123,
//	               "global_files": 12, "global_bytes": 456,
//	               "need_files": 2, "need_dirs": 0, "need_deletes": 1,
//	               "need_bytes": 333,
//	               "recv_rate": 1000000, "send_rate": 0, "conflicts": 1,
//	               "peers": ["..."], "last_synced": "...",
//	               "error": {"message": "...", "action": "...", "since": "..."}}],
//	  "problems": [{"message": "...", "action": "...", "since": "..."}]
//	}
type statusReport struct {
	Version  int            `json:"version"` // statusVersion
	Device   statusDevice   `json:"device"`
	Peers    []statusPeer   `json:"peers"`              // pinned peers, connected or not
	Folders  []statusFolder `json:"folders"`            // configured folders
	Problems []statusIssue  `json:"problems,omitempty"` // device-wide errors the user must act on
}

// statusVersion is the current statusReport.Version.
const statusVersion = 1

// statusDevice describes this device.
type statusDevice struct {
	ID        string    `json:"id"`        // full device ID
	ShortID   string    `json:"short_id"`  // first 7 characters
	Name      string    `json:"name"`      // config name (or host name)
	Listen    []string  `json:"listen"`    // addresses actually listened on
	Discovery string    `json:"discovery"` // "mdns" or "off"
	Started   time.Time `json:"started,omitzero"`
	SendLimit int64     `json:"send_limit,omitempty"` // bytes/s; 0 = unlimited
	RecvLimit int64     `json:"recv_limit,omitempty"` // bytes/s; 0 = unlimited
}

// statusPeer describes one pinned peer.
type statusPeer struct {
	ID        string       `json:"id"`
	ShortID   string       `json:"short_id"`
	Name      string       `json:"name"`
	Connected bool         `json:"connected"`
	Address   string       `json:"address,omitempty"`   // of the connection, or last known
	Direction string       `json:"direction,omitempty"` // "inbound" or "outbound" while connected
	Since     time.Time    `json:"since,omitzero"`      // connected since
	LastSeen  time.Time    `json:"last_seen,omitzero"`  // last time connected; zero = never
	Error     *statusIssue `json:"error,omitempty"`     // e.g. an unexpected certificate
}

// Folder states.
const (
	folderScanning = "scanning"
	folderSyncing  = "syncing"
	folderIdle     = "idle"
	folderError    = "error"
)

// statusFolder describes one shared folder.
type statusFolder struct {
	ID          string       `json:"id"`
	Path        string       `json:"path"`
	State       string       `json:"state"` // scanning, syncing, idle or error
	LocalFiles  int64        `json:"local_files"`
	LocalBytes  int64        `json:"local_bytes"`
	Counting    bool         `json:"counting,omitempty"` // the local totals are not counted yet (a large library, just started); local_files and local_bytes are 0 or old
	GlobalFiles int64        `json:"global_files"`       // what the folder should hold once in sync
	GlobalBytes int64        `json:"global_bytes"`
	NeedFiles   int64        `json:"need_files"`   // files (and symlinks) still to fetch
	NeedDirs    int64        `json:"need_dirs"`    // directories still to make or change
	NeedDeletes int64        `json:"need_deletes"` // deletions still to apply
	NeedBytes   int64        `json:"need_bytes"`
	RecvRate    int64        `json:"recv_rate"` // bytes/s, recent average
	SendRate    int64        `json:"send_rate"`
	Conflicts   int          `json:"conflicts"`              // conflict copies in the folder
	CaseClashes int          `json:"case_clashes,omitempty"` // peers' files not synced: the disk ignores case and their names clash
	BadNames    int          `json:"bad_names,omitempty"`    // peers' files not synced: the disk does not take their names
	Peers       []string     `json:"peers"`                  // device IDs it is shared with ([] for none)
	LastSynced  time.Time    `json:"last_synced,omitzero"`
	Error       *statusIssue `json:"error,omitempty"` // the last error, if unresolved
}

// statusIssue is a problem the user must act on.
type statusIssue struct {
	Message string    `json:"message"`          // what is wrong: "folder path missing: /x"
	Action  string    `json:"action,omitempty"` // what to do: "create it or remove the folder"
	Since   time.Time `json:"since,omitzero"`
}

func statusCommand(g globalFlags, args []string) error {
	fs := newFlags("status")
	asJSON := fs.Bool("json", false, "print the daemon's status as JSON (stable format)")
	watch := fs.Bool("watch", false, "refresh until interrupted")
	interval := fs.Duration("interval", 2*time.Second, "refresh interval with --watch")
	pos, err := parseArgs(g, fs, "status [--json] [--watch [--interval D]]", args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return usageErr("status", "unexpected argument %q", pos[0])
	}
	if *interval < 100*time.Millisecond || *interval > time.Hour {
		return usageErr("status", "--interval %v: want 100ms to 1h", *interval)
	}
	if !*watch && flagSet(fs, "interval") {
		return usageErr("status", "--interval is the refresh interval of --watch; add --watch")
	}
	paths, err := g.paths()
	if err != nil {
		return err
	}
	if !*watch {
		out, err := fetchStatus(context.Background(), paths, *asJSON)
		if err != nil {
			return err
		}
		_, err = g.Stdout.Write(out)
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return watchStatus(ctx, g.Stdout, isTerminal(g.Stdout), *interval, func(ctx context.Context) ([]byte, error) {
		return fetchStatus(ctx, paths, *asJSON)
	})
}

// fetchStatus asks the daemon for its status and renders it.
func fetchStatus(ctx context.Context, paths Paths, asJSON bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var raw json.RawMessage
	if err := callDaemonContext(ctx, paths, "GET", "/v1/status", nil, &raw); err != nil {
		return nil, err
	}
	if asJSON {
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return nil, fmt.Errorf("the daemon's status: %w", err)
		}
		b.WriteByte('\n')
		return b.Bytes(), nil
	}
	var r statusReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, withHint(fmt.Errorf("the daemon's status: %w", err), "make sure 'syncd' and the running daemon are the same version")
	}
	var b bytes.Buffer
	renderStatus(&b, &r, time.Now())
	return b.Bytes(), nil
}

// watchStatus prints fetch's output every interval until ctx ends. On a
// terminal each view replaces the previous one; otherwise views follow each
// other. Errors (the daemon stopping) are shown and retried.
func watchStatus(ctx context.Context, w io.Writer, tty bool, interval time.Duration, fetch func(context.Context) ([]byte, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		out, err := fetch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			out = []byte("syncd: " + oneLine(err.Error()) + " (retrying)\n")
		}
		if tty {
			// Home, clear to end of screen after drawing: no flicker.
			out = append([]byte("\x1b[H"), bytes.ReplaceAll(out, []byte("\n"), []byte("\x1b[K\n"))...)
			out = append(out, "\x1b[J"...)
		} else {
			out = append(out, '\n')
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// renderStatus writes the human view of r; now is used for "ago" times.
func renderStatus(w io.Writer, r *statusReport, now time.Time) {
	d := r.Device
	fmt.Fprintf(w, "This device  %s (%s)\n", nameOr(d.Name, "unnamed"), d.ShortID)
	listen := "not listening"
	if len(d.Listen) > 0 {
		listen = "listening on " + strings.Join(d.Listen, ", ")
	}
	fmt.Fprintf(w, "  %s, discovery %s", listen, nameOr(d.Discovery, "?"))
	if d.SendLimit > 0 || d.RecvLimit > 0 {
		fmt.Fprintf(w, ", limits up %s down %s", rateText(d.SendLimit), rateText(d.RecvLimit))
	}
	if !d.Started.IsZero() {
		fmt.Fprintf(w, ", up %s", ago(now, d.Started))
	}
	fmt.Fprintln(w)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  ! %s\n", issueText(p))
	}

	fmt.Fprintf(w, "\nPeers (%d)\n", len(r.Peers))
	if len(r.Peers) == 0 {
		fmt.Fprintf(w, "  none; pin one with 'syncd peer add ID' or 'syncd pair'\n")
	}
	for _, p := range r.Peers {
		var state string
		switch {
		case p.Connected:
			state = "connected"
			if p.Direction != "" {
				state += " (" + p.Direction + ")"
			}
			if p.Address != "" {
				state += " " + p.Address
			}
			if !p.Since.IsZero() {
				state += " for " + ago(now, p.Since)
			}
		case !p.LastSeen.IsZero():
			state = "last seen " + ago(now, p.LastSeen) + " ago"
			if p.Address != "" {
				state += " at " + p.Address
			}
		default:
			state = "never seen"
		}
		fmt.Fprintf(w, "  %-16s %-7s  %s\n", nameOr(p.Name, "-"), p.ShortID, state)
		if p.Error != nil {
			fmt.Fprintf(w, "    ! %s\n", issueText(*p.Error))
		}
	}

	fmt.Fprintf(w, "\nFolders (%d)\n", len(r.Folders))
	if len(r.Folders) == 0 {
		fmt.Fprintf(w, "  none; share one with 'syncd folder add FOLDER-ID PATH --peer ID'\n")
	}
	for _, f := range r.Folders {
		fmt.Fprintf(w, "  %-16s %s\n", f.ID, f.Path)
		line := "    " + nameOr(f.State, "unknown")
		if f.State == folderSyncing || f.NeedFiles+f.NeedDirs+f.NeedDeletes > 0 {
			line += " " + progressBar(f.GlobalBytes-f.NeedBytes, f.GlobalBytes, 20)
			need := plural(f.NeedFiles, "file")
			if f.NeedDirs > 0 {
				need += ", " + plural(f.NeedDirs, "directory")
			}
			if f.NeedDeletes > 0 {
				need += ", " + plural(f.NeedDeletes, "deletion")
			}
			line += fmt.Sprintf(", need %s (%s)", need, formatBytes(f.NeedBytes))
		}
		if f.RecvRate > 0 || f.SendRate > 0 {
			line += fmt.Sprintf(", down %s/s up %s/s", formatBytes(f.RecvRate), formatBytes(f.SendRate))
		}
		fmt.Fprintln(w, line)
		if f.Counting {
			fmt.Fprintf(w, "    counting the files; shared with %s", plural(int64(len(f.Peers)), "peer"))
		} else {
			fmt.Fprintf(w, "    %s, %s local; shared with %s", plural(f.LocalFiles, "file"), formatBytes(f.LocalBytes), plural(int64(len(f.Peers)), "peer"))
		}
		if !f.LastSynced.IsZero() {
			if f.State == folderIdle {
				fmt.Fprintf(w, "; in sync %s ago", ago(now, f.LastSynced))
			} else {
				fmt.Fprintf(w, "; last in sync %s ago", ago(now, f.LastSynced))
			}
		}
		fmt.Fprintln(w)
		if f.Conflicts > 0 {
			fmt.Fprintf(w, "    %s: files named *.sync-conflict-* hold the other versions\n", plural(int64(f.Conflicts), "conflict"))
		}
		if f.BadNames > 0 {
			fmt.Fprintf(w, "    ! %s not synced: this disk does not take their names (too long, a character such as ? or :, or a trailing dot or space); rename them on the other device (the log names them)\n", plural(int64(f.BadNames), "file"))
		}
		if f.CaseClashes > 0 {
			fmt.Fprintf(w, "    ! %s not synced: this disk ignores case and their names differ only in case from others; rename one of each pair (the log names them)\n", plural(int64(f.CaseClashes), "file"))
		}
		if f.Error != nil {
			fmt.Fprintf(w, "    ! %s\n", issueText(*f.Error))
		}
	}
}

func issueText(i statusIssue) string {
	s := oneLine(i.Message)
	if i.Action != "" {
		s += "; " + oneLine(i.Action)
	}
	return s
}

func nameOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// plural renders "1 file", "2 files".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if stem, ok := strings.CutSuffix(noun, "y"); ok {
		return fmt.Sprintf("%d %sies", n, stem)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// rateText renders a rate limit.
func rateText(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return formatBytes(n) + "/s"
}

// progressBar renders done/total as "[#####.....]  50%".
func progressBar(done, total int64, width int) string {
	frac := 1.0
	if total > 0 {
		frac = min(max(float64(done)/float64(total), 0), 1)
	}
	n := int(frac * float64(width))
	return fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("#", n), strings.Repeat(".", width-n), int(frac*100))
}

// ago renders the time since t coarsely: "12s", "5m", "3h", "2d".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
