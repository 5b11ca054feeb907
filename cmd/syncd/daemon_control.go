package main

import (
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/syncd-project/syncd/peer"
	"github.com/syncd-project/syncd/transport"
)

// controlHandler is the control API served on the unix socket.
func (d *daemon) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.status())
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := d.reloadConfig(); err != nil {
			writeJSONError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	d.pairRoutes(mux)
	return mux
}

// status renders the engine's snapshot in the stable statusReport format.
func (d *daemon) status() statusReport {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	s := d.engine.Status()
	disc := cfg.Discovery
	if d.flags.discovery != "" {
		disc = d.flags.discovery
	}
	rep := statusReport{
		Version: statusVersion,
		Device: statusDevice{ID: d.id.ID.String(), ShortID: d.id.ID.Short(), Name: d.name(),
			Listen: []string{d.ln.Addr().String()}, Discovery: disc, Started: d.started,
			SendLimit: limitOf(d.send.Limit()), RecvLimit: limitOf(d.recv.Limit())},
		Peers:   []statusPeer{},
		Folders: []statusFolder{},
	}
	for _, p := range s.Peers {
		sp := statusPeer{ID: p.ID, ShortID: p.Short, Name: p.Name, Connected: p.Connected, Address: p.Addr}
		if p.Connected {
			sp.Direction, sp.Since, sp.LastSeen = "outbound", p.Since, time.Now()
		} else {
			sp.LastSeen = p.Since
		}
		if p.LastError != "" && !p.Connected {
			sp.Error = &statusIssue{Message: p.LastError, Action: peerAction(p)}
		}
		rep.Peers = append(rep.Peers, sp)
	}
	// The engine names a folder's peers by short ID; the report promises
	// full device IDs, which the config has.
	folderPeers := map[string][]string{}
	for _, cf := range cfg.Folders {
		ids := []string{}
		for _, id := range cf.Peers {
			ids = append(ids, id.String())
		}
		folderPeers[cf.ID] = ids
	}
	for _, f := range s.Folders {
		if folderPeers[f.ID] == nil {
			folderPeers[f.ID] = []string{}
		}
		sf := folderReport(f, folderPeers[f.ID])
		rep.Folders = append(rep.Folders, sf)
	}
	return rep
}

// folderReport is what status reports of the engine's folder f, shared
// with peers (full device IDs).
func folderReport(f peer.FolderStatus, peers []string) statusFolder {
	sf := statusFolder{ID: f.ID, Path: f.Path, State: folderState(f.State), LocalFiles: f.LocalFiles, LocalBytes: f.LocalBytes, Counting: f.Counting,
		// NeedBytes is the total of the pull in progress and DoneBytes what
		// of it has arrived.
		GlobalFiles: f.GlobalFiles, GlobalBytes: f.GlobalBytes,
		NeedFiles: int64(f.NeedFiles), NeedDirs: int64(f.NeedDirs), NeedDeletes: int64(f.NeedDeletes), NeedBytes: max(f.NeedBytes-f.DoneBytes, 0), RecvRate: f.RecvRate, SendRate: f.SendRate,
		Conflicts: f.Conflicts, CaseClashes: f.CaseClashes, BadNames: f.BadNames, Peers: peers, LastSynced: f.LastSync}
	if f.LastError != "" {
		sf.Error = &statusIssue{Message: f.LastError, Action: folderAction(f.LastError, f.Path)}
	}
	return sf
}

func folderState(s string) string {
	switch s {
	case peer.StateScanning, peer.StateStarting:
		return folderScanning
	case peer.StateSyncing:
		return folderSyncing
	case peer.StateError:
		return folderError
	}
	return folderIdle
}

func peerAction(p peer.PeerStatus) string {
	e := p.LastError
	name := nameOr(p.Name, p.Short)
	if strings.Contains(e, "remote error: tls:") {
		// Its certificate checked out here; it refused this device's.
		return name + " does not accept this device (removed there, or never paired): run 'syncd peer add' there with this device's ID ('syncd id'), or pair again"
	}
	if strings.Contains(e, transport.ErrUnknownPeer.Error()) || strings.Contains(e, transport.ErrBadChain.Error()) ||
		strings.Contains(e, "certificate") || strings.Contains(e, "hello names another device") {
		return "the device answering there is not the " + name + " you pinned: check 'syncd id' on it, and pair again if it was reinstalled"
	}
	return "check that syncd runs on " + name + " and that its address is reachable (firewall, 'syncd peer add ID --addr HOST:PORT')"
}

func limitOf(l rate.Limit) int64 {
	if l == rate.Inf {
		return 0
	}
	return int64(l)
}

// folderAction says what to do about a folder's error.
func folderAction(msg, path string) string {
	switch {
	case strings.Contains(msg, "index disk full"), strings.Contains(msg, "disk of syncd's index"):
		return "free space on the disk that holds syncd's index (its home); syncing resumes by itself"
	case strings.Contains(msg, "disk full"):
		return "free space on the disk that holds " + path + "; syncing resumes by itself"
	case strings.Contains(msg, "read-only file system"):
		return "remount the file system of " + path + " read-write; syncing resumes by itself"
	case strings.Contains(msg, "is not a directory;"):
		return "move what is at " + path + " out of the way and make it a directory, or remove the folder with 'syncd folder remove' and add it again with the right path"
	case strings.Contains(msg, "missing or not a directory"):
		return "create " + path + " or remove the folder with 'syncd folder remove' and add it again"
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "could not be read"):
		return "give the user running syncd access to the files named in the log (chmod/chown), or shorten paths the log says are too long"
	case strings.Contains(msg, "special files"):
		return "FIFOs, sockets and devices are never synced; the log names them: remove them, or list them in .syncdignore to silence this"
	case strings.Contains(msg, "names cannot be synced"):
		return "rename the files the log names ('scan: skipped ... op=name'): names must be UTF-8, without a backslash; they sync once renamed"
	case strings.Contains(msg, "watching for changes stopped"):
		return "raise fs.inotify.max_user_watches (see the README); until then changes are found by periodic rescans"
	}
	return "see the daemon's log for details"
}
