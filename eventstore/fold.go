package eventstore

import (
	"context"
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

// FoldOptions are the optional parts of a fold.
type FoldOptions struct {
	// Progress, if set, is called now and then (every batch) with the
	// records read so far and the records to read in all, from the
	// folding goroutine.
	Progress func(done, total int64)
}

// FoldLogWith is FoldLog with options.
func FoldLogWith(ctx context.Context, brokers []string, topic string, opt FoldOptions) (*domain.Fold, FoldStats, error) {
	st := FoldStats{}
	offs, err := ReadOffsets(ctx, brokers, topic)
	if err != nil {
		return nil, st, err
	}
	st.Ends = offs.Ends
	var total int64
	for p, end := range offs.Ends {
		total += end - offs.Starts[p]
	}
	progress := func() {
		if opt.Progress != nil {
			opt.Progress(st.Records, total)
		}
	}
	progress()
	fold := domain.NewFold()
	// Records are decoded in chunks on every core and folded in log order
	// on this goroutine: the fold is cheap, JSON decoding is not.
	const chunk = 4096
	type result struct {
		env domain.Envelope
		ev  domain.Event
		err error
	}
	decoded := make([]result, chunk)
	apply := func(recs []Record) {
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
				fold.Apply(d.env, d.ev)
			}
			*d = result{} // let the chunk's records go
		}
		st.Records += int64(len(recs))
		progress()
	}
	err = ReadRange(ctx, brokers, topic, offs.Starts, offs.Ends, func(recs []Record) error {
		for lo := 0; lo < len(recs); lo += chunk {
			apply(recs[lo:min(lo+chunk, len(recs))])
		}
		return nil
	})
	if err != nil {
		return nil, st, fmt.Errorf("fold %s: %w", topic, err)
	}
	return fold, st, nil
}
