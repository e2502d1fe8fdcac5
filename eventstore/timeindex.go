package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// offsetsForTime returns, per partition, the offset of the first record
// stamped at or after t (its end if none), between starts and ends.
//
// The broker's time index answers first (ListOffsets with a timestamp), and
// the answer is checked with one probe: the record just before it must be
// stamped before t. Kafka keeps a batch's max timestamp right, but the
// embedded broker (kfake) trusts the producer's batch header, and sarama (the
// relay's producer) leaves it unset, so there the index finds nothing. Where
// the check fails the offset is found by binary search over record
// timestamps instead, one probe per partition per round: about 20 rounds for
// a million records. Both assume timestamps rise along a partition, as they do
// with one relay's clock; the read's Slack absorbs the rest.
func offsetsForTime(ctx context.Context, cl *kgo.Client, cfg ReadConfig, partitions []int32, starts, ends map[int32]int64, t time.Time) (map[int32]int64, error) {
	offs, err := listOffsets(ctx, cl, cfg.Topic, partitions, max(t.UnixMilli(), 0))
	if err != nil {
		return nil, fmt.Errorf("offsets for %s: %w", t.Format(time.RFC3339Nano), err)
	}
	// lo and hi bound the answer of each partition still searched.
	lo, hi := map[int32]int64{}, map[int32]int64{}
	check := map[int32]int64{}
	for p, o := range offs {
		if o < 0 || o > ends[p] {
			o = ends[p] // no record at or after t, says the broker
		}
		o = max(o, starts[p])
		offs[p] = o
		if o > starts[p] {
			check[p] = o - 1
		}
	}
	stamps, err := probe(ctx, cfg, check, ends)
	if err != nil {
		return nil, err
	}
	for p, ts := range stamps {
		if !ts.Before(t) {
			// The record before the answer is already at or after t: the
			// index is wrong here; search [start, answer).
			lo[p], hi[p] = starts[p], offs[p]-1
		}
	}
	for len(lo) > 0 {
		mids := make(map[int32]int64, len(lo))
		for p := range lo {
			mids[p] = lo[p] + (hi[p]-lo[p])/2
		}
		stamps, err := probe(ctx, cfg, mids, ends)
		if err != nil {
			return nil, err
		}
		for p, mid := range mids {
			if ts, ok := stamps[p]; ok && !ts.Before(t) {
				hi[p] = mid
			} else {
				lo[p] = mid + 1
			}
			if lo[p] >= hi[p] {
				offs[p] = hi[p]
				delete(lo, p)
				delete(hi, p)
			}
		}
	}
	return offs, nil
}

// probe returns the timestamp of the record at each given offset (or, if
// that offset holds no data record, the next one), within ten seconds.
func probe(ctx context.Context, cfg ReadConfig, at, ends map[int32]int64) (map[int32]time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := RecordTimes(ctx, cfg.Brokers, cfg.Topic, at, ends)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", cfg.Topic, err)
	}
	return out, nil
}
