package main

import (
	"strings"
	"testing"

	"github.com/syncd-project/syncd/peer"
)

func TestStatusActions(t *testing.T) {
	for _, tc := range []struct {
		name, err, want string
	}{
		{"wrong device", "127.0.0.1:1: Get \"https://x/v1/hello\": unknown peer: ABCDEFG", "not the laptop you pinned"},
		{"bad chain", "bad device certificate chain: 1 certificates", "not the laptop you pinned"},
		{"unreachable", "127.0.0.1:1: connect: connection refused", "reachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := peerAction(peer.PeerStatus{Name: "laptop", LastError: tc.err})
			if !strings.Contains(got, tc.want) {
				t.Errorf("peerAction(%q) = %q, want it to contain %q", tc.err, got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ msg, want string }{
		{"disk full while pulling; free some space, syncing resumes by itself", "free space on the disk that holds /x"},
		{"disk full: the disk of syncd's index has less than 192 MiB free; free some space", "holds syncd's index"},
		{"scan: put local f: index disk full: syncd's index needs 192 MiB free on its disk", "holds syncd's index"},
		{"cannot write: the folder is on a read-only file system; remount it read-write", "remount the file system of /x"},
		{"cannot write into the folder: permission denied (see the log for the path)", "chmod"},
		{"folder path /x is missing or not a directory; create it", "create /x"},
		{"3 paths could not be read (permission denied, or a path too long: the log says which)", "chmod"},
		{"2 names cannot be synced (not UTF-8, a backslash, too long) and are not; the log names them", "rename the files"},
		{"watching for changes stopped (inotify watch limit reached)", "max_user_watches"},
		{"1 special files (FIFOs, sockets, devices) cannot be synced: they are not synced; the log names them", ".syncdignore"},
		{"something else", "log"},
	} {
		if got := folderAction(tc.msg, "/x"); !strings.Contains(got, tc.want) {
			t.Errorf("folderAction(%q) = %q, want it to contain %q", tc.msg, got, tc.want)
		}
	}
}

// TestFolderReportProgress: the local totals include the files a pull has
// committed, so what the folder will hold is those plus what is still to
// arrive, not plus the whole pull (which counted the committed part twice
// and made the bar fall back at every pass).
func TestFolderReportProgress(t *testing.T) {
	f := peer.FolderStatus{ID: "photos", State: peer.StateSyncing, LocalFiles: 40, LocalBytes: 400,
		NeedFiles: 60, NeedBytes: 1000, DoneBytes: 400}
	got := folderReport(f, []string{})
	if got.GlobalFiles != 100 || got.GlobalBytes != 1000 || got.NeedFiles != 60 || got.NeedBytes != 600 {
		t.Errorf("report = global %d files %d bytes, need %d files %d bytes; want global 100 files 1000 bytes, need 60 files 600 bytes",
			got.GlobalFiles, got.GlobalBytes, got.NeedFiles, got.NeedBytes)
	}
	f.DoneBytes = 1200 // more arrived than the pass counted (a resend)
	if got := folderReport(f, []string{}); got.NeedBytes != 0 || got.GlobalBytes != 400 {
		t.Errorf("report with more done than needed = need %d, global %d bytes; want 0 and 400", got.NeedBytes, got.GlobalBytes)
	}
}
