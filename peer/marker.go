package peer

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
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

// servedFile holds, in the folder's marker directory, the epoch and the
// top sequence of the folder's records last made durable for peers
// (durableTop), 16 bytes. An index that starts below it, in the same
// epoch, was rolled back (restored from a backup while the folder stayed):
// the sequences above its top were handed to peers for other records,
// and peers, which ask only for what lies above the last one they got,
// would never get what this device records next under them.
func servedFile(root string) string { return nativePath(root, ".syncd/served") }

// noteServed writes epoch and top to the served file of folder fid, if its
// marker directory is there. It is not synced: it follows the index, which
// is, so it can lag behind after a power cut, never run ahead.
func (e *Engine) noteServed(fid string, epoch, top uint64) {
	root, ok := e.root(fid)
	if !ok {
		return
	}
	fd, err := unix.Open(servedFile(root), unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var b [16]byte
	if n, _ := unix.Pread(fd, b[:], 0); n == len(b) && binary.BigEndian.Uint64(b[:8]) == epoch && binary.BigEndian.Uint64(b[8:]) >= top {
		// Never lower: a peer asking before checkServed ran would
		// otherwise hide the rollback it is there to find.
		return
	}
	binary.BigEndian.PutUint64(b[:8], epoch)
	binary.BigEndian.PutUint64(b[8:], top)
	unix.Pwrite(fd, b[:], 0)
}

// checkServed gives the folder a new epoch if its index is below what
// peers were served in its epoch (servedFile): peers then start over with
// its records.
func (f *folder) checkServed() {
	b, err := os.ReadFile(servedFile(f.cfg.Root))
	if err != nil || len(b) != 16 {
		return
	}
	st := f.e.o.Store
	epoch, err := st.Epoch(f.cfg.ID)
	if err != nil || binary.BigEndian.Uint64(b[:8]) != epoch {
		return
	}
	top, err := st.LocalSeq(f.cfg.ID)
	served := binary.BigEndian.Uint64(b[8:])
	if err != nil || top >= served {
		return
	}
	f.e.o.Logger.Warn("the index is older than what peers were sent of this folder (restored from a backup?); they will fetch its records again",
		"folder", f.cfg.ID, "index_top", top, "sent_top", served)
	if err := st.ResetEpoch(f.cfg.ID); err != nil {
		f.e.o.Logger.Warn("could not give the folder a new epoch", "folder", f.cfg.ID, "err", err)
	}
}
