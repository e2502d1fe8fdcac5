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
	st := FoldStats{}
	ends, err := EndOffsets(ctx, brokers, topic)
	if err != nil {
		return nil, st, err
	}
	st.Ends = ends
	fold := domain.NewFold()
	// Records are decoded in batches on every core and folded in log order
	// on this goroutine: the fold is cheap, JSON decoding is not.
	const batchSize = 4096
	batch := make([]Record, 0, batchSize)
	type result struct {
		env domain.Envelope
		ev  domain.Event
		err error
	}
	decoded := make([]result, batchSize)
	flush := func() {
		parallel(len(batch), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				d := &decoded[i]
				d.env, d.ev, d.err = domain.Decode(batch[i].Value)
			}
		})
		for i, rec := range batch {
			d := &decoded[i]
			if d.err != nil {
				st.Undecodable++
				if len(st.Errors) < 10 {
					st.Errors = append(st.Errors, fmt.Sprintf("record %d@%d: %v", rec.Partition, rec.Offset, d.err))
				}
			} else {
				fold.Apply(d.env, d.ev)
			}
			*d = result{} // let the batch's records go
		}
		batch = batch[:0]
	}
	err = ReadAll(ctx, brokers, topic, func(rec Record) error {
		if rec.Offset >= ends[rec.Partition] {
			return nil // written after we took the ends
		}
		st.Records++
		batch = append(batch, rec)
		if len(batch) == batchSize {
			flush()
		}
		return nil
	})
	if err != nil {
		return nil, st, fmt.Errorf("fold %s: %w", topic, err)
	}
	flush()
	return fold, st, nil
}
