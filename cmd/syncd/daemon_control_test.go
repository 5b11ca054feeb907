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
		{"refused by it", "127.0.0.1:1: Get \"https://x/v1/hello\": remote error: tls: bad certificate", "laptop does not accept this device"},
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
		{"folder path /x is not a directory; move what is there away or fix the path in the config", "move what is at /x out of the way"},
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

// TestFolderReportProgress: the report takes what the folder will hold
// from the engine, and what is still needed is what has not arrived; the
// bar of a single file half arrived is at half.
func TestFolderReportProgress(t *testing.T) {
	f := peer.FolderStatus{ID: "videos", State: peer.StateSyncing, LocalFiles: 40, LocalBytes: 400,
		GlobalFiles: 41, GlobalBytes: 1400, NeedFiles: 1, NeedBytes: 1000, DoneBytes: 500}
	got := folderReport(f, []string{})
	if got.GlobalFiles != 41 || got.GlobalBytes != 1400 || got.NeedFiles != 1 || got.NeedBytes != 500 {
		t.Errorf("report = global %d files %d bytes, need %d files %d bytes; want global 41 files 1400 bytes, need 1 file 500 bytes",
			got.GlobalFiles, got.GlobalBytes, got.NeedFiles, got.NeedBytes)
	}
	if bar := progressBar(got.GlobalBytes-got.NeedBytes, got.GlobalBytes, 20); !strings.Contains(bar, " 64%") {
		t.Errorf("bar = %s, want 64%% (900 of 1400 bytes)", bar)
	}
	f.DoneBytes = 1200 // more arrived than the pass counted (a resend)
	if got := folderReport(f, []string{}); got.NeedBytes != 0 {
		t.Errorf("report with more done than needed = need %d bytes, want 0", got.NeedBytes)
	}
}
