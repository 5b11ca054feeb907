package peer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/syncd-project/syncd/index"
)

// Wire limits. Everything a peer sends is bounded by these before it is
// decoded or stored.
const (
	// MaxRecordBytes bounds one encoded record: a 1 TB file at the average
	// block size of 1 MiB has about 10^6 blocks of ~50 bytes.
	MaxRecordBytes = 64 << 20
	// maxHelloBytes bounds the hello document.
	maxHelloBytes = 1 << 20
	// maxBatch is how many records are stored per index transaction.
	maxBatch = 512
	// maxBatchBlocks bounds the blocks of the records held for one such
	// transaction (a decoded block takes about 50 bytes): a record may
	// have millions, and 512 of them held at once would take tens of GB.
	maxBatchBlocks = 1 << 20
)

// ErrTooLarge is returned when a peer sends a frame over a limit.
var ErrTooLarge = errors.New("frame over the limit")

// writeFrame writes one record as a uvarint length followed by its encoding.
func writeFrame(w io.Writer, r *index.Record) error {
	b, err := index.EncodeRecord(r)
	if err != nil {
		return err
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(b)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// frameReader reads records written by writeFrame, reusing its buffer.
type frameReader struct {
	r   *bufio.Reader
	buf bytes.Buffer
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next record, io.EOF at a clean end.
func (f *frameReader) next() (index.Record, error) {
	n, err := binary.ReadUvarint(f.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return index.Record{}, io.EOF
		}
		return index.Record{}, fmt.Errorf("read frame length: %w", err)
	}
	if n == 0 || n > MaxRecordBytes {
		return index.Record{}, fmt.Errorf("%w: record of %d bytes", ErrTooLarge, n)
	}
	// Grow with the bytes that actually arrive, so a lying length costs
	// nothing until the peer really sends that much.
	f.buf.Reset()
	if _, err := io.CopyN(&f.buf, f.r, int64(n)); err != nil {
		return index.Record{}, fmt.Errorf("read frame: %w", io.ErrUnexpectedEOF)
	}
	return index.DecodeRecord(f.buf.Bytes())
}
