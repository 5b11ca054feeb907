package index

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// checkTables reads the index of every table that the store's MANIFEST
// lists, with badger's own table reader, before badger opens them. A table
// cut short (a disk error, a copy that stopped half way) makes badger panic
// while it opens the store, in a goroutine of its own that no caller can
// recover: the daemon would die with a Go trace instead of saying that its
// index is damaged. Here the same reader runs in the caller's goroutine,
// and such a panic becomes an error. Anything else that is wrong (no
// MANIFEST, a bad one, a missing table) is left for badger to report.
// Tables the MANIFEST does not list (one half written when a compaction
// was cut short) are not read: badger removes them.
func checkTables(dir string, bo badger.Options) error {
	fp, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
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
	// NoVerification: the table's index and its first and last keys are
	// read (where a cut table panics), not every block's checksum.
	if _, err := table.OpenTable(mf, table.Options{ChkMode: options.NoVerification, Compression: options.None}); err != nil {
		// Some of its errors have closed mf already, some not: it is not
		// closed again (a second munmap could hit a new mapping), and
		// badger's own open fails the same way.
		return nil
	}
	mf.Close(-1)
	return nil
}
