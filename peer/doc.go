// Package peer is the sync engine: per-peer sessions that exchange index
// deltas, the puller that fetches content by hash, the server of blocks and
// the conflict rules. It builds on transport, discovery and index through
// function values and small interfaces, and knows nothing of the command
// line or the config file.
//
// # Protocol
//
// Peers speak HTTP over the transport's mutual-TLS connections; the caller's
// device is taken from the verified certificate chain (Options.Identify).
// Every handler answers 403 to a device that is not pinned and 404 for a
// folder that is not shared with the caller, exactly as for a folder that
// does not exist.
//
//	GET /v1/hello
//	    {"id": "...", "name": "...", "protocol": 1, "folders": [...]}
//	    folders lists the folders this device shares with the caller.
//	GET /v1/folders/{folder}/changes?since=SEQ&epoch=E&wait=DURATION
//	    Header Syncd-Epoch: this device's index epoch for the folder. When E
//	    differs, SEQ is ignored and the answer starts from 0 (the caller
//	    drops what it held of this device). Body: this device's records
//	    with sequence > SEQ in sequence order, each framed as a uvarint
//	    length (at most MaxRecordBytes) followed by the record's CBOR
//	    encoding (index.EncodeRecord), at most 50,000 per answer. When there
//	    are none, the answer waits up to DURATION (at most 60 s) for the
//	    next local change, so a change reaches a connected peer at once.
//	    Only records already on disk are sent (the index is synced first,
//	    at most once per change): a sequence a peer was told of is never
//	    handed out again for another record after a power cut.
//	GET /v1/folders/{folder}/blocks/{hash}
//	    The block's bytes, read from any local file of that folder that the
//	    index says holds it. The caller verifies the hash; a mismatch is
//	    discarded and the block is asked of another peer.
//	POST /v1/folders/{folder}/blocks
//	    Several blocks in one answer, for the small files of a pull. Body:
//	    1 to 64 block hashes of 32 bytes. Answer: for each hash in order, a
//	    uvarint length (0: not here) and that many bytes. The puller fetches
//	    the blocks of single-block files up to 256 KiB ahead of its workers
//	    this way (prefetch.go); a peer that answers 404 or 405 (an older
//	    version) is asked block by block for the rest of the session.
//
// Blocks travel over their own client (Options.BlockClient; HTTP/1.1
// keep-alive connections in the daemon), closed 5 s after the last block.
//
// A session (one per pinned peer) dials the addresses the address book
// knows, checks hello, then long-polls changes for every folder that both
// sides share and pings hello every Options.Ping; a failed ping or poll
// ends the session and it redials with backoff (1 s doubling to 30 s). The
// wait ends early when the peer calls this device, or when the address
// book (if it can tell, as discovery.Book does) says the peer's addresses
// changed: a device seen again on the LAN is dialled at once.
//
// Records relay: a device serves only its own (local) records, but a file it
// pulled becomes its local record with the original version vector, so
// devices that only talk through a third converge through it.
//
// # Sync rules
//
// The global version of a path is the record whose version vector dominates
// all others. Concurrent versions are ordered by, in turn: a live entry
// beats a deletion (delete vs modify: the modification wins and the file
// comes back everywhere), the newer mtime, the higher last-modifier device
// key, the larger content ID, the larger mode, and, for records alike in
// all that (two losers of a three-way conflict, each holding the winner
// merged with its own version), the larger version vector, so that one
// takes the other's and the versions converge. Every device orders the
// same records the same way. A directory that a pull makes again as the
// parent of a new entry, while this index holds its deletion, is scanned
// and so recorded live again. Equal versions with different contents (a device whose index was
// lost scans an edit before it hears from its peers, and gives it a
// version it used before) are ordered as concurrent ones.
//
// When the local version loses to a concurrent one and differs from it, the
// local file is renamed to NAME.sync-conflict-YYYYMMDD-HHMMSS-<short id>.EXT
// (the loser's mtime in UTC and its last modifier) before the winner is put
// in place; the conflict copy is then scanned and synced like any file.
// Identical concurrent contents do not conflict, and neither does a file
// the scanner has not seen yet that already holds the winner's content.
// A device that takes a winner over a local version the winner does not
// dominate (a conflict's loser, a deletion a live edit beat) records the
// winner with both vectors merged: a device that still holds an older copy
// of the local version then finds it superseded, not concurrent, so what
// was deleted or lost here cannot win again there. The other devices take
// the merged version as a change of the version only, leaving the file
// untouched. The decided cases:
//
//   - modify vs modify: conflict copy of the loser, as above.
//   - delete vs modify: the modification wins, the file is restored.
//   - modify vs rename (A edits x, B renames x to y): y appears with B's
//     content and x comes back with A's edit (delete vs modify); no content
//     is lost and both names exist.
//   - rename vs rename (A renames x to y, B renames x to z): both y and z
//     exist with the same content; x is deleted.
//   - directory deleted on one side while a file was added inside it on the
//     other: the directory is not removed while it holds anything; the new
//     file syncs and the directory comes back everywhere.
//   - directory replaced by a file (or symlink) on one side while something
//     was added or changed inside it on the other: the directory, as it is
//     there, becomes a conflict copy (it syncs everywhere) and the file
//     takes the name; with nothing new inside it goes to the trash.
//   - a pulled change of mode or mtime only: the file's content is checked
//     after the change, so an edit of the same size made just then is not
//     hidden by the new mtime; the scan makes it a new version.
//
// A local change the scanner has not seen yet is caught by the final check
// before a rename: it becomes a conflict copy, never overwritten. A save
// made after the final check, as the new version takes its place, is not
// overwritten either: where the check moved the old entry away the rename
// will not replace (RENAME_NOREPLACE) and the check runs again; where it
// kept the old entry as a hard link in the trash the new version is
// exchanged with it (RENAME_EXCHANGE) and anything other than that entry
// comes out as a conflict copy (pull.go, replaceChecked).
//
// # Pulling
//
// A pass applies directories first (shallow first), then symlinks, then
// files in parallel (a file below another file of the same pass waits for
// it), then deletions (deepest first): a symlink or file never replaces a
// directory while a pull writes inside it. Records that arrive while the
// files are being pulled (a peer still scanning sends them in batches) join
// the running pass for up to 30 s: their directories are made at once and
// their files queued behind the others (pull.go, refill). Deletions,
// symlinks, and paths at, above or below one the pass already handles wait
// for the next pass, which keeps that order; below a directory the pass
// made there is room, so a new tree comes in one pass. A pass with many
// deletions (a directory removed or renamed on the peer) records them 512
// at a time, after one syncfs made their moves into the trash durable. A
// directory whose deletion finds it not empty stays (something new or
// ignored may live inside); it is tried again once a deletion inside it is
// applied, as when its entries' records arrive after its own.
//
// A file whose new version has the content it already holds (a chmod, a
// touch) is changed in place, through a descriptor opened the same way as
// the temp files below, if it is still as recorded. Every other needed
// file is assembled in a temp file beside it (index.TempPrefix, named
// after the content ID so that a restarted pull resumes and keeps its
// verified blocks; after each pull pass, temp files that the pass did not
// keep for another try are removed), from local files holding a block
// (renames and copies move no data) or from connected peers, least busy
// first; the blocks of small files come ahead of the workers in batches
// (prefetch.go). Every block is verified; a large file's writeback starts
// every 16 MiB and what lies 48 MiB behind leaves the page cache (buf.go,
// writeBehind). The complete temp file gets its mode and mtime, then joins
// a batch (at most 512 files, or the end of a wave), still open (while
// fewer than maxHeld are, in all folders). A batch is committed in order: its data
// is made durable (parallel fsyncs for a few files; one syncfs of the file
// system from 32 files on: one journal commit instead of one per file,
// then a check of each file held open for its own writeback error, which
// another syncfs may have seen first; a file that failed is neither put in
// place nor kept for a resume);
// then the pages of each file held open leave the page cache (a pull of a
// photo library does not evict the user's working set, and the next files
// reuse the pages), and each file is checked against its target (final check) and
// renamed over it (a file the index knows nothing at is renamed with
// RENAME_NOREPLACE, and only checked if something is there after all);
// each directory touched is synced once; only then are the records
// written, in one index transaction. A record is never written before its
// rename is durable; a crash in between leaves resumable temp files, or
// renamed files that the next scan finds with the global version's
// content. The old content is hard-linked into .syncd/trash/PATH~TIMESTAMP
// first (or moved there for deletions; an entry there is never replaced),
// and the trash is emptied of entries older than Options.TrashKeep.
//
// .syncd is also the folder's marker (markerDir). A folder without it, or
// without its root, is away (a disk not mounted leaves an empty mount
// point): the scanner asks before it looks and again before it writes a
// tombstone (index.ScanOptions.Present), no pull pass starts, the trash
// never makes .syncd, status says why, and an idle folder is checked every
// ten seconds. Back, the folder is watched again (index.Scanner.Rewatch)
// and scanned in full. Only a folder with no local record and no marker
// token (neverSynced) gets a marker made. .syncd/folder names the folder
// and holds a token that the index keeps (index.Store.MarkerToken); a
// marker of another folder, or with another token (this folder as another
// device or an earlier add of it made it), is taken as away too
// (checkMarker). A byte-for-byte copy of the disk carries the same token
// and is not told apart. The local state of a folder no longer configured
// (records, token) is forgotten (index.Store.ForgetLocal; no tombstone),
// so that one added again starts over; a folder's runs, and that
// forgetting, never overlap, and a forget cut short is finished before the
// folder runs. .syncd/served holds the epoch and top sequence last made
// durable for peers: an index that starts below it in the same epoch was
// rolled back (restored from a backup) and takes a new epoch, so that
// peers fetch its records again (checkServed).
//
// Every change the puller makes in the folder goes through the directory
// that holds its path, opened from the folder's root (held open, O_PATH,
// for each pass) through plain directories only: one openat2
// (RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS) or, where openat2 is missing or
// refused, one openat per parent with O_NOFOLLOW (paths.go). The temp
// file's creation, the final check with its conflict copy or trash move,
// the rename, the stat for the record, directories, symlinks and
// deletions then work by name in that directory (or through a descriptor
// opened from it), so a symlink swapped in for a parent cannot redirect
// them outside the folder. (Only syncfs opens the root by path: it acts on
// the whole file system.) Blocks read from local files, to serve a peer
// or to reuse local data in a pull, are opened the same way, the whole
// path in one openat2 (folderReader, api.go).
//
// The watcher reports everything the puller writes. The puller notes each
// file it installed and each directory it made, and a report of a path
// that is still exactly as noted costs no scan (ownwrites.go); a directory
// it made is watched before anything is written into it
// (index.Scanner.WatchDir) and noted only if it is still empty then, so
// that what others put in it is reported on its own and the directory need
// not be walked.
package peer
