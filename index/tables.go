package index

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// checkTables reads every table that the store's MANIFEST lists, with
// badger's own table reader and its checksums, before badger opens them. A
// table cut short (a disk error, a copy that stopped half way) makes badger
// panic while it opens the store, in a goroutine of its own that no caller
// can recover, and damaged bytes inside a table make its reads panic
// later: the daemon would die with a Go trace, at every start, instead of
// saying that its index is damaged. Here the same reader runs in the
// caller's goroutine, and both become ErrCorrupt. Tables without a
// MANIFEST are ErrCorrupt too: badger would take the store for a new one
// and delete them, and with them the index, without a word. Anything else
// that is wrong (a bad MANIFEST, a missing table) is left for badger to
// report. Tables the MANIFEST does not list (one half written when a
// compaction was cut short) are not read: badger removes them.
func checkTables(dir string, bo badger.Options) error {
	fp, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		if tables, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(tables) > 0 {
			return fmt.Errorf("%w: %s is missing but %d tables are there", ErrCorrupt, badger.ManifestFilename, len(tables))
		}
		return nil
	}
	if err != nil {
		return nil
	}
	defer fp.Close()
	mf, _, err := badger.ReplayManifestFile(fp, bo.ExternalMagicVersion, bo)
	if err != nil {
		return nil
	}
	for id := range mf.Tables {
		if err := checkTable(table.NewFilename(id, dir)); err != nil {
			return err
		}
	}
	return nil
}

// checkTable opens the table at name read-only and closes it again; a panic
// of badger's reader is returned as an error.
func checkTable(name string) (err error) {
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil // badger says so
	}
	defer func() {
		if r := recover(); r != nil {
			mf.Close(-1) // -1: never truncate
			err = fmt.Errorf("%w: table %s is damaged", ErrCorrupt, filepath.Base(name))
		}
	}()
	// OnTableRead: every block's checksum is checked (one read of the
	// table), besides its index and its first and last keys (where a cut
	// table panics).
	if _, err := table.OpenTable(mf, table.Options{ChkMode: options.OnTableRead, Compression: options.None}); err != nil {
		// Some of its errors have closed mf already, some not: it is not
		// closed again (a second munmap could hit a new mapping).
		return fmt.Errorf("%w: table %s: %v", ErrCorrupt, filepath.Base(name), err)
	}
	mf.Close(-1)
	return nil
}
