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
	var total int64
	for p, end := range offs.Ends {
		total += end - starts[p]
	}
	if opt.Start != nil {
		opt.Start(starts, offs.Ends)
	}
	progress := func() {
		if opt.Progress != nil {
			opt.Progress(st.Records, total)
		}
	}
	progress()
	fold := opt.Fold
	if fold == nil {
		fold = domain.NewFold()
	}
	// Records are decoded in chunks on every core and folded in log order
	// on this goroutine: the fold is cheap, JSON decoding is not.
	const chunk = 4096
	type result struct {
		env domain.Envelope
		ev  domain.Event
		err error
	}
	decoded := make([]result, chunk)
	apply := func(recs []Record) error {
		parallel(len(recs), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				d := &decoded[i]
				d.env, d.ev, d.err = domain.Decode(recs[i].Value)
			}
		})
		for i, rec := range recs {
			d := &decoded[i]
			if d.err != nil {
				st.Undecodable++
				if len(st.Errors) < 10 {
					st.Errors = append(st.Errors, fmt.Sprintf("record %d@%d: %v", rec.Partition, rec.Offset, d.err))
				}
			} else {
				if opt.Before != nil {
					if err := opt.Before(rec, d.env, d.ev); err != nil {
						return err
					}
				}
				fold.Apply(d.env, d.ev)
			}
			*d = result{} // let the chunk's records go
		}
		st.Records += int64(len(recs))
		progress()
		if opt.After != nil {
			return opt.After()
		}
		return nil
	}
	err = readRange(ctx, brokers, topic, starts, offs.Ends, foldFetch, func(recs []Record) error {
		for lo := 0; lo < len(recs); lo += chunk {
			if err := apply(recs[lo:min(lo+chunk, len(recs))]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, st, fmt.Errorf("fold %s: %w", topic, err)
	}
	return fold, st, nil
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
