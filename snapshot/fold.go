// Package snapshot folds the event log from its last fold snapshot: a
// checkpoint of the fold (domain.Fold) at a log position, kept as a file,
// verified (SHA-256 and the fold's version) before use. Closed sales are
// archived out of memory as the fold goes (domain.Fold.ArchiveClosed) into the
// snapshot being written, so memory is bounded by the open sales, whether
// the fold starts from a snapshot or from the beginning. `gate restore` and
// `audit` fold through it; docs/snapshots.md says who writes snapshots and why
// they are files.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// Options configure Fold.
type Options struct {
	// Dir is the snapshot directory. Empty: no snapshot is read or saved
	// (archives go to a temporary file).
	Dir string
	// Fresh folds from the beginning even if there is a snapshot.
	Fresh bool
	// Keep is how many snapshots Save leaves in Dir (default 2).
	Keep int
	// Progress is told how far the fold of the log (after the snapshot) is.
	Progress func(done, total int64)
	// Warn is told why a snapshot was not used (default: not told).
	Warn func(string)

	// chunkDone, if set, sees the fold after each chunk of records was
	// folded and archived (the tests of its memory).
	chunkDone func(*domain.Fold)
}

// Info describes the snapshot a fold started from.
type Info struct {
	Path      string
	CreatedAt time.Time
	// Records is the number of log records the snapshot folds.
	Records   int64
	Positions map[int32]int64
}

// Result is a fold of the log: the fold (open sales and orders in memory,
// closed ones archived), and their archives, which it keeps in a file until
// Close.
type Result struct {
	Fold *domain.Fold
	// Stats are of the records read after the snapshot.
	Stats eventstore.FoldStats
	// From is the snapshot the fold started from; nil from the beginning.
	From *Info
	// Records is the number of records folded in all, snapshot included.
	Records int64

	topic  string
	opt    Options
	w      *writer
	saved  string
	closed bool
}

// Fold folds topic's log up to its current end, from the newest snapshot in
// opt.Dir that verifies and fits the topic (others are ignored with a
// warning), or from the beginning.
func Fold(ctx context.Context, brokers []string, topic string, opt Options) (*Result, error) {
	if opt.Warn == nil {
		opt.Warn = func(string) {}
	}
	if opt.Keep <= 0 {
		opt.Keep = 2
	}
	var rd *reader
	if opt.Dir != "" && !opt.Fresh {
		var err error
		if rd, err = (store{opt.Dir, topic}).latest(opt.Warn); err != nil {
			return nil, err
		}
	}
	res, err := fold(ctx, brokers, topic, opt, rd)
	if rd != nil {
		rd.close()
	}
	if errors.Is(err, eventstore.ErrFoldFrom) {
		opt.Warn(fmt.Sprintf("ignoring snapshot %s: %v", rd.f.Name(), err))
		return fold(ctx, brokers, topic, opt, nil)
	}
	return res, err
}

// fold folds from rd (nil: the beginning) into a new snapshot file.
func fold(ctx context.Context, brokers []string, topic string, opt Options, rd *reader) (*Result, error) {
	dir := opt.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	w, err := newWriter(dir)
	if err != nil {
		return nil, err
	}
	res := &Result{Fold: domain.NewFold(), topic: topic, opt: opt, w: w}
	fo := eventstore.FoldOptions{Progress: opt.Progress}
	if rd != nil {
		h := &rd.head
		res.From = &Info{Path: rd.f.Name(), CreatedAt: h.CreatedAt, Records: h.Records, Positions: h.Positions}
		res.Fold, res.Records = domain.FoldFromState(h.State), h.Records
		fo.From = h.Positions
		// The new snapshot holds every archive: copy them as they are.
		for id, sp := range h.Index {
			body, err := rd.rawArchive(sp)
			if err == nil {
				sp, err = w.raw(body)
			}
			if err != nil {
				w.close(false)
				return nil, err
			}
			w.index[id] = sp
		}
	}
	f := res.Fold
	fo.Fold = f
	var wm watermark
	fo.Start = wm.start
	fo.Before = func(rec eventstore.Record, env domain.Envelope, ev domain.Event) error {
		wm.saw(rec, env)
		if len(f.Archived) == 0 {
			return nil
		}
		sale, other := domain.SalesOf(ev)
		for _, id := range [2]string{sale, other} {
			if _, ok := f.Archived[id]; !ok {
				continue
			}
			a, err := w.readArchive(id)
			if err != nil {
				return err
			}
			f.Reopen(a)
			delete(w.index, id)
		}
		return nil
	}
	fo.After = func() error {
		err := res.archive(wm.time())
		if opt.chunkDone != nil {
			opt.chunkDone(f)
		}
		return err
	}
	_, st, err := eventstore.FoldLogWith(ctx, brokers, topic, fo)
	if err == nil {
		err = res.archive(domain.EndOfLog)
	}
	if err != nil {
		w.close(false)
		return nil, err
	}
	res.Stats, res.Records = st, res.Records+st.Records
	return res, nil
}

// archive moves the sales that closed before the watermark out of memory
// into the file.
func (r *Result) archive(watermark time.Time) error {
	for _, a := range r.Fold.ArchiveClosed(watermark) {
		if err := r.w.archive(a); err != nil {
			return err
		}
	}
	return nil
}

// Archive returns an archived sale whole (the orders a restore writes back, or
// an audit compares one by one).
func (r *Result) Archive(saleID string) (*domain.SaleArchive, error) {
	return r.w.readArchive(saleID)
}

// Save writes the fold as the newest snapshot of opt.Dir and prunes the
// oldest beyond opt.Keep. It refuses a fold that left records out (this
// build could not decode them: a newer one may). The Result stays usable.
func (r *Result) Save() (string, error) {
	switch {
	case r.opt.Dir == "":
		return "", errors.New("snapshot: no snapshot directory")
	case r.saved != "":
		return r.saved, nil
	case r.Stats.Undecodable > 0:
		return "", fmt.Errorf("snapshot: not saved: %d records of the log cannot be decoded by this build", r.Stats.Undecodable)
	}
	st := store{r.opt.Dir, r.topic}
	now := time.Now()
	path := st.path(now)
	h := &Head{Format: FormatVersion, FoldVersion: domain.FoldVersion, Topic: r.topic, Positions: r.Stats.Ends, CreatedAt: now.UTC(), Records: r.Records, State: r.Fold.State()}
	if err := r.w.finish(h, path); err != nil {
		return "", err
	}
	r.saved = path
	return path, st.prune(r.opt.Keep)
}

// Close lets the archives go: the file is removed unless it was saved.
func (r *Result) Close() {
	if !r.closed {
		r.closed = true
		r.w.close(r.saved != "")
	}
}

// watermark is the time every partition still being read has reached: the
// least time of the last event read from each partition with records left.
type watermark struct {
	ends map[int32]int64     // partition → its end offset
	next map[int32]int64     // partition → the next offset to read
	last map[int32]time.Time // partition → when its last event read occurred
}

func (w *watermark) start(from, to map[int32]int64) {
	w.ends, w.next, w.last = to, map[int32]int64{}, map[int32]time.Time{}
	for p, off := range from {
		w.next[p] = off
	}
}

func (w *watermark) saw(rec eventstore.Record, env domain.Envelope) {
	w.next[rec.Partition] = rec.Offset + 1
	if env.OccurredAt.After(w.last[rec.Partition]) {
		w.last[rec.Partition] = env.OccurredAt
	}
}

func (w *watermark) time() time.Time {
	t := domain.EndOfLog
	for p, end := range w.ends {
		if w.next[p] < end && w.last[p].Before(t) {
			t = w.last[p] // zero until the partition's first event
		}
	}
	return t
}
