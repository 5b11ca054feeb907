package peer

import (
	"slices"
	"strings"
	"time"
)

// PeerStatus is what status shows of one peer.
type PeerStatus struct {
	ID        string    `json:"id"`
	Short     string    `json:"short"`
	Name      string    `json:"name"`
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since,omitzero"` // connected since, or last seen
	Addr      string    `json:"addr,omitempty"`
	LastError string    `json:"last_error,omitempty"`
}

// FolderStatus is what status shows of one folder.
type FolderStatus struct {
	ID         string `json:"id"`
	Path       string `json:"path"`
	State      string `json:"state"`
	LocalFiles int64  `json:"local_files"`
	LocalBytes int64  `json:"local_bytes"`
	// GlobalFiles and GlobalBytes are what the local totals will be once
	// the pull in progress is recorded.
	GlobalFiles int64 `json:"global_files"`
	GlobalBytes int64 `json:"global_bytes"`
	Counting    bool  `json:"counting,omitempty"` // LocalFiles, LocalBytes and Conflicts are not counted yet
	RecvRate    int64 `json:"recv_rate"`          // bytes/s over the last pull
	SendRate    int64 `json:"send_rate"`          // block bytes/s served to peers over the last seconds
	NeedFiles   int   `json:"need_files"`         // files and symlinks still to pull in the running pass
	NeedDirs    int   `json:"need_dirs"`
	NeedDeletes int   `json:"need_deletes"`
	NeedBytes   int64 `json:"need_bytes"`
	DoneBytes   int64 `json:"done_bytes"`
	Conflicts   int   `json:"conflicts"`
	// CaseClashes counts the peers' paths not pulled because the folder
	// ignores case and their names clash with others (casefold.go).
	CaseClashes int `json:"case_clashes,omitempty"`
	// BadNames counts the peers' paths not pulled because the folder's
	// file system does not take a name of theirs as it is (namesFit).
	BadNames  int       `json:"bad_names,omitempty"`
	LastSync  time.Time `json:"last_sync,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Peers     []string  `json:"peers"`
}

// Status is a snapshot of the engine.
type Status struct {
	Peers   []PeerStatus   `json:"peers"`
	Folders []FolderStatus `json:"folders"`
}

// Status returns a snapshot for the control API.
func (e *Engine) Status() Status {
	e.mu.Lock()
	conns := make([]*conn, 0, len(e.peers))
	for _, c := range e.peers {
		conns = append(conns, c)
	}
	folders := make([]*folder, 0, len(e.folders))
	for _, f := range e.folders {
		folders = append(folders, f)
	}
	e.mu.Unlock()
	var s Status
	for _, c := range conns {
		c.mu.Lock()
		s.Peers = append(s.Peers, PeerStatus{ID: c.id.String(), Short: c.id.Short(), Name: c.name,
			Connected: c.up, Since: c.since, Addr: c.addr, LastError: c.lastErr})
		c.mu.Unlock()
	}
	for _, f := range folders {
		f.count(true)
		f.mu.Lock()
		lastErr := f.lastErr
		if lastErr == "" {
			lastErr = f.scanErr
		}
		if lastErr == "" {
			lastErr = f.watchErr
		}
		fs := FolderStatus{ID: f.cfg.ID, Path: f.cfg.Root, State: f.state, NeedFiles: f.needFiles, NeedDirs: f.needDirs, NeedDeletes: f.needDels,
			NeedBytes: f.needBytes, DoneBytes: f.doneBytes, LocalFiles: f.localFiles, LocalBytes: f.localBytes, Counting: !f.counted, Conflicts: f.conflicts, CaseClashes: len(f.caseHeld), LastSync: f.lastSync, LastError: lastErr}
		fs.GlobalFiles = max(f.localFiles+f.passFiles-f.committedFiles, 0)
		fs.GlobalBytes = max(f.localBytes+f.passBytes-f.committedBytes, 0)
		if f.state == StateSyncing {
			if el := time.Since(f.pullStart).Seconds(); el > 0.5 {
				fs.RecvRate = int64(float64(f.doneBytes) / el)
			}
		}
		for id := range f.peers {
			fs.Peers = append(fs.Peers, id.Short())
		}
		f.mu.Unlock()
		fs.SendRate = f.sent.rate(time.Now())
		f.nameFitsMu.Lock()
		fs.BadNames = len(f.badNames)
		f.nameFitsMu.Unlock()
		slices.Sort(fs.Peers)
		s.Folders = append(s.Folders, fs)
	}
	slices.SortFunc(s.Peers, func(a, b PeerStatus) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Folders, func(a, b FolderStatus) int { return strings.Compare(a.ID, b.ID) })
	return s
}
