package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/seckill/seckill/domain"
)

// FoldStats tells what FoldLog read.
type FoldStats struct {
	// Ends are the end offsets the fold read up to, per partition.
	Ends map[int32]int64
	// Records is the number of records read.
	Records int64
	// Undecodable counts records that are not events this build can
	// decode; Errors names the first ten.
	Undecodable int64
	Errors      []string
}

// FoldLog reads the whole log, up to its end offsets as of the call, and folds
// every event into a new domain.Fold: the state every model of the system
// must agree with (restore, audit). A record that is not a decodable event is
// counted in the stats and left out, so the caller decides whether that is
// fatal.
func FoldLog(ctx context.Context, brokers []string, topic string) (*domain.Fold, FoldStats, error) {
	return FoldLogWith(ctx, brokers, topic, FoldOptions{})
}

// ErrFoldFrom is the error of a fold asked to continue from positions the
// topic does not have (FoldOptions.From): it is not the log that was folded.
var ErrFoldFrom = errors.New("cannot continue the fold")

// FoldOptions are the optional parts of a fold.
type FoldOptions struct {
	// Progress, if set, is called now and then (every batch) with the
	// records read so far and the records to read in all, from the
	// folding goroutine.
	Progress func(done, total int64)

	// Fold and From continue a fold (package snapshot): Fold is the state
	// of the log up to From (per partition, the next offset to read; a
	// partition absent is read from its start). A From beyond a
	// partition's end is an error (the topic is not the one folded).
	Fold *domain.Fold
	From map[int32]int64
	// Start, if set, is told the offsets the fold reads, from (inclusive)
	// and to (exclusive), before it reads. Before, if set, is called with
	// each event and its record before it is applied (the snapshot fold
	// hands archived sales back to the fold there), After after each chunk
	// of records was applied.
	Start  func(from, to map[int32]int64)
	Before func(Record, domain.Envelope, domain.Event) error
	After  func() error
}

// FoldLogWith is FoldLog with options.
func FoldLogWith(ctx context.Context, brokers []string, topic string, opt FoldOptions) (*domain.Fold, FoldStats, error) {
	st := FoldStats{}
	offs, err := ReadOffsets(ctx, brokers, topic)
	if err != nil {
		return nil, st, err
	}
	st.Ends = offs.Ends
	starts := offs.Starts
	if opt.From != nil {
		if starts, err = continueFrom(offs, opt.From); err != nil {
			return nil, st, fmt.Errorf("fold %s: %w: %w", topic, ErrFoldFrom, err)
		}
	}
	f := folder{fold: opt.Fold, opt: opt, st: &st, decoded: make([]decodedRecord, foldChunk)}
	if f.fold == nil {
		f.fold = domain.NewFold()
	}
	for p, end := range offs.Ends {
		f.total += end - starts[p]
	}
	if opt.Start != nil {
		opt.Start(starts, offs.Ends)
	}
	f.progress()
	err = readRange(ctx, brokers, topic, starts, offs.Ends, foldFetch, func(recs []Record) error {
		for lo := 0; lo < len(recs); lo += foldChunk {
			if err := f.apply(recs[lo:min(lo+foldChunk, len(recs))]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, st, fmt.Errorf("fold %s: %w", topic, err)
	}
	return f.fold, st, nil
}

// foldChunk is how many records a fold decodes at once.
const foldChunk = 4096

// folder folds the records of a FoldLogWith into fold, counting in st.
type folder struct {
	fold    *domain.Fold
	opt     FoldOptions
	st      *FoldStats
	total   int64           // records to read, for Progress
	decoded []decodedRecord // one chunk's, reused
}

type decodedRecord struct {
	env domain.Envelope
	ev  domain.Event
	err error
}

func (f *folder) progress() {
	if f.opt.Progress != nil {
		f.opt.Progress(f.st.Records, f.total)
	}
}

// apply decodes a chunk of records on every core and folds them in log
// order on this goroutine: the fold is cheap, JSON decoding is not.
func (f *folder) apply(recs []Record) error {
	parallel(len(recs), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d := &f.decoded[i]
			d.env, d.ev, d.err = domain.Decode(recs[i].Value)
		}
	})
	for i, rec := range recs {
		err := f.one(rec, &f.decoded[i])
		f.decoded[i] = decodedRecord{} // let the chunk's records go
		if err != nil {
			return err
		}
	}
	f.st.Records += int64(len(recs))
	f.progress()
	if f.opt.After != nil {
		return f.opt.After()
	}
	return nil
}

// one folds one decoded record, or counts it undecodable.
func (f *folder) one(rec Record, d *decodedRecord) error {
	if d.err != nil {
		f.st.Undecodable++
		if len(f.st.Errors) < 10 {
			f.st.Errors = append(f.st.Errors, fmt.Sprintf("record %d@%d: %v", rec.Partition, rec.Offset, d.err))
		}
		return nil
	}
	if f.opt.Before != nil {
		if err := f.opt.Before(rec, d.env, d.ev); err != nil {
			return err
		}
	}
	f.fold.Apply(d.env, d.ev)
	return nil
}

// continueFrom returns the offsets to read from to continue a fold that read
// up to from: from itself where it is within the partition, the partition's
// start where from has none.
func continueFrom(offs Offsets, from map[int32]int64) (map[int32]int64, error) {
	starts := make(map[int32]int64, len(offs.Starts))
	for p, start := range offs.Starts {
		starts[p] = start
	}
	for p, pos := range from {
		end, ok := offs.Ends[p]
		switch {
		case !ok:
			return nil, fmt.Errorf("partition %d was folded but the topic has no such partition", p)
		case pos > end:
			return nil, fmt.Errorf("partition %d was folded up to offset %d but ends at %d", p, pos, end)
		case pos < offs.Starts[p]:
			return nil, fmt.Errorf("partition %d was folded up to offset %d but starts at %d (records were deleted)", p, pos, offs.Starts[p])
		}
		starts[p] = pos
	}
	return starts, nil
}
