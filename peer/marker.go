package peer

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/google/renameio/v2"
)

// markerFile names, inside the folder's marker (markerDir), the folder it
// belongs to and a token made with it, which the index records (Store.
// MarkerToken). A .syncd of another folder, or of another copy of this
// one (a second disk mounted at the same place, an older copy of it), is
// then not taken for this folder's: it would delete on every device what
// that disk lacks, or roll back what it has older.
func markerFile(root string) string { return nativePath(root, ".syncd/folder") }

// maxMarkerFile bounds what is read of a marker file.
const maxMarkerFile = 4 << 10

type markerInfo struct {
	Folder string `json:"syncd_folder"`
	Token  string `json:"token"`
}

// readMarker reads a marker file: a regular file (never a symlink or a
// FIFO) of at most maxMarkerFile bytes with a folder ID and a token.
func readMarker(name string) (markerInfo, error) {
	var m markerInfo
	fh, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return m, err
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err != nil {
		return m, err
	} else if !fi.Mode().IsRegular() {
		return m, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxMarkerFile+1))
	switch {
	case err != nil:
		return m, err
	case len(b) > maxMarkerFile:
		return m, fmt.Errorf("larger than %d bytes", maxMarkerFile)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("not a marker: %v", err)
	}
	if m.Folder == "" || m.Token == "" || len(m.Token) > 256 {
		return m, errors.New("not a marker: no folder ID or token")
	}
	return m, nil
}

// checkMarker checks, in a folder whose marker directory is there, that
// the marker is this folder's: of its ID, with the token this device
// recorded. A marker with no file (made by hand, to resume a folder
// emptied on purpose) gets one; the token of a folder that has none
// recorded (new, forgotten, or synced before markers had tokens) is taken
// from the file. The error is an *awayError, or nil.
func (f *folder) checkMarker() error {
	f.markerMu.Lock()
	defer f.markerMu.Unlock()
	name := markerFile(f.cfg.Root)
	st := f.e.o.Store
	want, err := st.MarkerToken(f.cfg.ID)
	if err != nil {
		return &awayError{msg: fmt.Sprintf("cannot read the folder's marker token from the index (%v); syncing this folder is paused until it can", err)}
	}
	m, err := readMarker(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		tok := want
		if tok == "" {
			var b [16]byte
			_, _ = rand.Read(b[:]) // never fails (crypto/rand contract since Go 1.24)
			tok = hex.EncodeToString(b[:])
		}
		data, _ := json.Marshal(markerInfo{Folder: f.cfg.ID, Token: tok})
		if err := renameio.WriteFile(name, append(data, '\n'), 0o600); err != nil {
			return &awayError{msg: fmt.Sprintf("cannot write the folder marker %s (%v); syncing this folder is paused until it can; check the folder's permissions and free space", name, errnoOf(err))}
		}
		if want == "" {
			return f.adoptMarker(tok)
		}
		return nil
	case err != nil:
		return &awayError{msg: fmt.Sprintf("cannot read the folder marker %s (%v); syncing this folder is paused so that nothing is deleted on other devices; if this is the folder's disk, remove that file and syncd writes it again", name, errnoOf(err))}
	case m.Folder != f.cfg.ID:
		return &awayError{msg: fmt.Sprintf("%s belongs to the syncd folder %q, not %q: another disk or folder is at %s; syncing this folder is paused so that nothing is deleted on other devices; mount the right disk or fix the folder's path in the config, or if this directory (a copy of that folder, say) is to be synced as %q, delete that file", name, m.Folder, f.cfg.ID, f.cfg.Root, f.cfg.ID)}
	case want == "":
		return f.adoptMarker(m.Token)
	case m.Token != want:
		return &awayError{msg: fmt.Sprintf("%s is another copy of the folder %q than the one this device syncs (another disk, or an older copy of it); syncing this folder is paused so that nothing is deleted or rolled back on other devices; mount the disk this device synced, or to sync this copy from now on, remove the folder with syncd folder remove while syncd runs, then add it again", f.cfg.Root, f.cfg.ID)}
	}
	return nil
}

// adoptMarker records tok as the token of this folder's marker.
func (f *folder) adoptMarker(tok string) error {
	if err := f.e.o.Store.SetMarkerToken(f.cfg.ID, tok); err != nil {
		return &awayError{msg: fmt.Sprintf("cannot record the folder's marker token in the index (%v); syncing this folder is paused until it can", err)}
	}
	return nil
}
