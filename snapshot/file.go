package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/seckill/seckill/domain"
)

// A snapshot file is
//
//	magic "SKSNAP01"
//	records: uvarint length, then that many bytes of zstd-compressed JSON;
//	         one per archived sale (domain.SaleArchive), then the head
//	trailer: the head's offset (8 bytes, big endian), then the SHA-256 of
//	         every byte before the trailer (32 bytes)
//
// The head (Head) says what the snapshot is of and holds the fold's memory
// and the index of the archives. A file whose checksum, magic, format or
// fold version does not match is refused whole (ErrInvalid).
const (
	magic       = "SKSNAP01"
	trailerSize = 8 + sha256.Size
	// FormatVersion is the layout of the file and of Head.
	FormatVersion = 1
)

// ErrInvalid is the error of a snapshot that does not verify.
var ErrInvalid = errors.New("snapshot does not verify")

// Head is what a snapshot is of.
type Head struct {
	Format      int    `json:"format"`
	FoldVersion int    `json:"fold_version"`
	Topic       string `json:"topic"`
	// Positions are, per partition, the offset the fold read up to: the
	// next one to read.
	Positions map[int32]int64 `json:"positions"`
	CreatedAt time.Time       `json:"created_at"`
	// Records is how many records of the log the state folds.
	Records int64            `json:"records"`
	State   domain.FoldState `json:"state"`
	Index   map[string]span  `json:"index"`
}

type span struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"` // of the record, its length prefix included
}

func newDecoder() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		panic(err) // only for options that are invalid, which these are not
	}
	return d
}

// writer appends records to a new snapshot file; the archives it holds can be
// read back while it is written (a reopened sale).
type writer struct {
	enc   *zstd.Encoder
	dec   *zstd.Decoder
	f     *os.File
	bw    *bufio.Writer
	sum   hash.Hash
	off   int64
	index map[string]span
}

func newWriter(dir string) (*writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	f, err := os.CreateTemp(dir, ".writing-*.snap")
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	w := &writer{enc: enc, dec: newDecoder(), f: f, bw: bufio.NewWriterSize(f, 1<<20), sum: sha256.New(), index: map[string]span{}}
	return w, w.write([]byte(magic))
}

func (w *writer) write(b []byte) error {
	if _, err := w.bw.Write(b); err != nil {
		return fmt.Errorf("snapshot: write %s: %w", w.f.Name(), err)
	}
	w.sum.Write(b)
	w.off += int64(len(b))
	return nil
}

// record writes v as a record and returns where it is.
func (w *writer) record(v any) (span, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return span{}, fmt.Errorf("snapshot: encode: %w", err)
	}
	return w.raw(w.enc.EncodeAll(js, nil))
}

// raw writes an already compressed record body.
func (w *writer) raw(body []byte) (span, error) {
	at := w.off
	if err := w.write(binary.AppendUvarint(nil, uint64(len(body)))); err != nil {
		return span{}, err
	}
	if err := w.write(body); err != nil {
		return span{}, err
	}
	return span{Off: at, Len: w.off - at}, nil
}

// archive writes a sale's archive; a later one of the same sale replaces it.
func (w *writer) archive(a *domain.SaleArchive) error {
	sp, err := w.record(a)
	if err != nil {
		return err
	}
	w.index[a.Sale.SaleID] = sp
	return nil
}

// readArchive reads back an archive this writer wrote.
func (w *writer) readArchive(id string) (*domain.SaleArchive, error) {
	sp, ok := w.index[id]
	if !ok {
		return nil, fmt.Errorf("snapshot: no archive of sale %s", id)
	}
	if err := w.bw.Flush(); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return readArchiveAt(w.f, w.dec, sp)
}

// finish writes the head (with the index) and the trailer, syncs and closes
// the file, and renames it to path.
func (w *writer) finish(h *Head, path string) error {
	h.Index = w.index
	sp, err := w.record(h)
	if err != nil {
		return err
	}
	trailer := binary.BigEndian.AppendUint64(nil, uint64(sp.Off))
	if err := w.write(trailer); err != nil {
		return err
	}
	if _, err := w.bw.Write(w.sum.Sum(nil)); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Rename(w.f.Name(), path); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	// Archives stay readable from the finished file.
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	w.f, w.bw = f, bufio.NewWriterSize(io.Discard, 0)
	return nil
}

// close closes the file, and removes it if it was not finished.
func (w *writer) close(finished bool) {
	w.dec.Close()
	_ = w.f.Close()
	if !finished {
		_ = os.Remove(w.f.Name())
	}
}

// reader is a snapshot file that verified.
type reader struct {
	f    *os.File
	dec  *zstd.Decoder
	head Head
}

// open verifies the snapshot at path: its checksum over the whole file,
// then its magic, format and fold version. Any mismatch is ErrInvalid.
func open(path string) (*reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	r := &reader{f: f, dec: newDecoder()}
	if err := r.verify(); err != nil {
		r.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func (r *reader) verify() error {
	fi, err := r.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size < int64(len(magic))+trailerSize {
		return fmt.Errorf("%w: %d bytes is too short", ErrInvalid, size)
	}
	trailer := make([]byte, trailerSize)
	if _, err := r.f.ReadAt(trailer, size-trailerSize); err != nil {
		return err
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, io.NewSectionReader(r.f, 0, size-sha256.Size)); err != nil {
		return err
	}
	if !bytes.Equal(sum.Sum(nil), trailer[8:]) {
		return fmt.Errorf("%w: checksum mismatch (the file is damaged or incomplete)", ErrInvalid)
	}
	head := make([]byte, len(magic))
	if _, err := r.f.ReadAt(head, 0); err != nil {
		return err
	}
	if string(head) != magic {
		return fmt.Errorf("%w: not a seckill fold snapshot", ErrInvalid)
	}
	off := int64(binary.BigEndian.Uint64(trailer[:8]))
	if off < int64(len(magic)) || off >= size-trailerSize {
		return fmt.Errorf("%w: head offset %d out of the file", ErrInvalid, off)
	}
	if err := readRecordAt(r.f, r.dec, off, &r.head); err != nil {
		return fmt.Errorf("%w: head: %v", ErrInvalid, err)
	}
	if r.head.Format != FormatVersion || r.head.FoldVersion != domain.FoldVersion {
		return fmt.Errorf("%w: format %d, fold version %d; this build reads format %d of fold version %d",
			ErrInvalid, r.head.Format, r.head.FoldVersion, FormatVersion, domain.FoldVersion)
	}
	return nil
}

func (r *reader) close() error {
	r.dec.Close()
	return r.f.Close()
}

// rawArchive returns the compressed body of a sale's archive record.
func (r *reader) rawArchive(sp span) ([]byte, error) {
	buf := make([]byte, sp.Len)
	if _, err := r.f.ReadAt(buf, sp.Off); err != nil {
		return nil, fmt.Errorf("snapshot: read archive: %w", err)
	}
	n, k := binary.Uvarint(buf)
	if k <= 0 || int64(k)+int64(n) != sp.Len {
		return nil, fmt.Errorf("%w: archive record at %d", ErrInvalid, sp.Off)
	}
	return buf[k:], nil
}

func readArchiveAt(f *os.File, dec *zstd.Decoder, sp span) (*domain.SaleArchive, error) {
	var a domain.SaleArchive
	if err := readRecordAt(f, dec, sp.Off, &a); err != nil {
		return nil, fmt.Errorf("snapshot: archive at %d: %w", sp.Off, err)
	}
	return &a, nil
}

// readRecordAt decodes the record at off into v.
func readRecordAt(f *os.File, dec *zstd.Decoder, off int64, v any) error {
	var pre [binary.MaxVarintLen64]byte
	n, err := f.ReadAt(pre[:], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	size, k := binary.Uvarint(pre[:n])
	if k <= 0 || size > 1<<34 {
		return errors.New("bad record length")
	}
	body := make([]byte, size)
	if _, err := f.ReadAt(body, off+int64(k)); err != nil {
		return err
	}
	js, err := dec.DecodeAll(body, nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(js, v)
}
