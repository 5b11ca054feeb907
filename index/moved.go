package index

import (
	"errors"
	"io"
	"os"
	"slices"
	"time"

	"github.com/syncd-project/syncd/index/chunk"
)

// A file renamed (or moved within the folder) keeps its inode, size and
// mtime. Its old path's record is buried by the scan that finds the old
// path gone, and the new path would then be hashed again: for a folder of
// videos moved elsewhere in the library, every byte read and hashed once
// more, minutes on a disk. The scanner remembers the blocks of the large
// files it buried lately; a new path that holds the same inode, with the
// same size and mtime, takes them when its change and birth times say it
// was renamed, not edited, linked or made since (movedBlocksOf,
// takeMoved), and its first and last blocks read back the same. Those
// two reads catch what a tag editor that puts the mtime back does (tags
// live at the start or end of a media file); an edit elsewhere that keeps
// size and mtime, made between the last scan and the rename, would not be
// seen, as it is not seen for a file that stays in place without a change
// time (Record.Ctime) either.
const (
	// movedMinBlocks: files of fewer blocks are hashed again (the two
	// checks would read most of them anyway).
	movedMinBlocks = 3
	// movedMinSize is the size below which a buried record is not read
	// back for its blocks (it could not have movedMinBlocks).
	movedMinSize = 2 * MinBlockSize
	// movedMaxBlocks bounds the blocks remembered (about 60 bytes each):
	// 128 Ki blocks are about 128 GiB of files.
	movedMaxBlocks = 128 << 10
	// movedFor is how long a buried file's blocks are remembered: a
	// rename's two halves can come in scans a debounce apart.
	movedFor = 10 * time.Minute
	// movedMaxDeferred bounds the large new files a full scan hashes
	// after its tombstones; past it they are hashed as they are walked.
	movedMaxDeferred = 10_000
)

// movedKey identifies a file across a rename.
type movedKey struct {
	inode   uint64
	size    int64
	modTime int64
}

// movedFile is a buried record's content, its inode's change time when it
// was recorded, and when it was buried.
type movedFile struct {
	size    int64
	ctime   int64
	content Hash
	blocks  []Block
	at      time.Time // ScanOptions.Now, for how long it is kept
	// ambiguous marks a key buried twice with different contents: it
	// holds no blocks and gives none until it expires.
	ambiguous bool
	// buried is the coarse wall clock (ns) when it was remembered, the
	// clock of change times: a rename came before it, while anything done
	// to the inode after (an edit, a link, a rename of an edited file)
	// gives the inode a change time at or past it. A change time equal to
	// it (the same clock tick) is taken for after.
	buried int64
}

// rememberMoved keeps the blocks of a large file record being buried, in
// case a new path turns out to hold the same file.
func (s *scan) rememberMoved(old Record) {
	if old.Kind != File || old.Inode == 0 || old.Size < movedMinSize {
		return
	}
	s.sc.movedMu.Lock()
	noRoom := s.sc.movedBlocks+movedMinBlocks > movedMaxBlocks
	s.sc.movedMu.Unlock()
	if noRoom {
		return // no room: do not read the record
	}
	full, ok, err := s.sc.store.Local(s.sc.folder, old.Path)
	if err != nil || !ok || full.Deleted || full.Kind != File || len(full.Blocks) < movedMinBlocks ||
		full.Inode != old.Inode || full.Size != old.Size || full.ModTime != old.ModTime || full.Ctime == 0 {
		return
	}
	sc := s.sc
	sc.movedMu.Lock()
	defer sc.movedMu.Unlock()
	now := sc.o.Now()
	sc.pruneMovedLocked(now)
	if sc.movedBlocks+len(full.Blocks) > movedMaxBlocks {
		return
	}
	if sc.moved == nil {
		sc.moved = map[movedKey]movedFile{}
	}
	k := movedKey{full.Inode, full.Size, full.ModTime}
	if had, ok := sc.moved[k]; ok {
		sc.movedBlocks -= len(had.blocks)
		if had.ambiguous || had.content != full.Content {
			// Two names of one inode (hard links) buried with different
			// records: one of them is stale (an edit through the other
			// name that kept size and mtime), and nothing tells which.
			// The file is hashed wherever it turns up.
			sc.moved[k] = movedFile{ambiguous: true, at: now}
			return
		}
	}
	sc.moved[k] = movedFile{size: full.Size, ctime: full.Ctime, content: full.Content, blocks: full.Blocks, at: now, buried: coarseNow()}
	sc.movedBlocks += len(full.Blocks)
}

// pruneMovedLocked forgets what was buried more than movedFor ago;
// sc.movedMu is held.
func (sc *Scanner) pruneMovedLocked(now time.Time) {
	for k, m := range sc.moved {
		if now.Sub(m.at) > movedFor || now.Before(m.at) {
			delete(sc.moved, k)
			sc.movedBlocks -= len(m.blocks)
		}
	}
	if len(sc.moved) == 0 {
		sc.moved = nil // give the map's memory back
	}
}

// movedBlocksOf returns the remembered content of a file buried lately
// that e may be, renamed. A path whose live record has e's inode is that
// file already (taken by an earlier scan, or a hard link of it): what it
// holds now is hashed, so that an edit that keeps size and mtime is seen
// by its change time as usual.
func (sc *Scanner) movedBlocksOf(e entry) (movedFile, bool) {
	fi := e.info
	if e.had && !e.old.Deleted && e.old.Inode == inode(fi) {
		return movedFile{}, false
	}
	if nlink(fi) > 1 {
		// Another name holds it: that name's record may be newer than
		// the buried one (an edit through it that kept size and mtime),
		// and nothing here tells.
		return movedFile{}, false
	}
	sc.movedMu.Lock()
	defer sc.movedMu.Unlock()
	m, ok := sc.moved[movedKey{inode(fi), fi.Size(), fi.ModTime().UnixNano()}]
	if !ok || m.ambiguous || sc.o.Now().Sub(m.at) > movedFor || Ctime(fi) == 0 || Ctime(fi) >= m.buried {
		return movedFile{}, false
	}
	return m, true
}

// takeMoved checks that the open file f was born no later than m's record
// was made (a new file given the freed inode of m's file is born after)
// and holds m's first and last blocks and, if so, returns m's blocks (a
// copy) and the bytes it read. A file system that keeps no birth time has
// its files hashed.
func (s *scan) takeMoved(f *os.File, m movedFile) ([]Block, int64, bool) {
	if bt, ok := birthTime(f); !ok || bt > m.ctime {
		return nil, 0, false
	}
	var read int64
	var buf []byte
	for _, b := range []Block{m.blocks[0], m.blocks[len(m.blocks)-1]} {
		if int64(cap(buf)) < b.Size {
			buf = make([]byte, b.Size)
		}
		data := buf[:b.Size]
		if n, err := f.ReadAt(data, b.Offset); n != len(data) || err != nil && err != io.EOF {
			return nil, read, false
		}
		read += b.Size
		if chunk.Sum(data) != b.Hash {
			return nil, read, false
		}
	}
	return slices.Clone(m.blocks), read, true
}

// hashDeferred hashes the files a full scan deferred (visit), now that the
// records of the paths it found gone are buried and remembered: a file
// moved to a directory the walk reached before the one it left takes its
// blocks too.
func (s *scan) hashDeferred() {
	if len(s.deferred) == 0 {
		return
	}
	s.withWorkers(func() {
		for _, e := range s.deferred {
			if s.ctx.Err() != nil {
				break
			}
			s.jobs <- e
		}
	})
	s.deferred = nil
}

// hasLocal reports whether the folder has any local record.
func (s *Store) hasLocal(folder string) bool {
	if checkFolder(folder) != nil {
		return false
	}
	has := false
	err := s.scanKeys(key(pLocal, folder), func([]byte) error { has = true; return errStop })
	return has && (err == nil || errors.Is(err, errStop))
}
