package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/eventstore"
)

// Offsets are the start (first record) and end (next offset to be written)
// of every partition of a topic.
type Offsets struct {
	Starts, Ends map[int32]int64
}

// LogOffsets returns the offsets of every partition of topic.
func LogOffsets(ctx context.Context, brokers []string, topic string) (Offsets, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("seckill-projections"))
	if err != nil {
		return Offsets{}, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	defer cl.Close()
	return logOffsets(ctx, cl, topic)
}

func logOffsets(ctx context.Context, cl *kgo.Client, topic string) (Offsets, error) {
	starts, ends, err := eventstore.OffsetRange(ctx, cl, topic)
	if err != nil {
		return Offsets{}, err
	}
	return Offsets{Starts: starts, Ends: ends}, nil
}

// ReadRange reads the records of topic from offset from[p] (inclusive) to
// to[p] (exclusive) of each partition p in to, directly (no consumer group,
// nothing committed), and passes them to fn in batches as they are fetched:
// a batch holds records of several partitions, each partition's in offset
// order. fn is called from one goroutine and must not keep the slice; an
// error from it stops the read and is returned as is. A partition missing
// from from is read from its start.
func ReadRange(ctx context.Context, brokers []string, topic string, from, to map[int32]int64, fn func([]Record) error) error {
	parts := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	for p, end := range to {
		start, ok := from[p]
		if !ok {
			start = 0
		}
		if start < end {
			parts[p] = kgo.NewOffset().At(start)
			remaining[p] = end
		}
	}
	if len(parts) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("seckill-projections-reader"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		// Below the start (retention) means from the start.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Control records take offsets too; seeing them tells when a
		// partition whose last offsets are markers is done.
		kgo.KeepControlRecords(),
		// Big fetches: a rebuild is throughput, not latency.
		kgo.FetchMaxBytes(64<<20),
		kgo.FetchMaxPartitionBytes(8<<20),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()

	var batch []Record
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w", topic, context.Cause(ctx))
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("read %s partition %d: %w", t, p, err))
		})
		if ferr != nil {
			return ferr
		}
		batch = batch[:0]
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			end, ok := remaining[fp.Partition]
			if !ok {
				return
			}
			for _, r := range fp.Records {
				if r.Offset >= end {
					break
				}
				if !r.Attrs.IsControl() {
					batch = append(batch, Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
				}
			}
			if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset >= end-1 {
				delete(remaining, fp.Partition)
				cl.PauseFetchPartitions(map[string][]int32{topic: {fp.Partition}})
			}
		})
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordTimes returns the timestamp of the record at offset at[p] of each
// partition p, for the partitions that answer within ctx (a partition whose
// record is a transaction marker, or gone, is left out).
func recordTimes(ctx context.Context, brokers []string, topic string, at map[int32]int64) (map[int32]time.Time, error) {
	out := map[int32]time.Time{}
	if len(at) == 0 {
		return out, nil
	}
	parts := map[int32]kgo.Offset{}
	for p, o := range at {
		parts[p] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("seckill-projections-lag"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(64<<10),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for len(out) < len(at) {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if _, done := out[fp.Partition]; done || len(fp.Records) == 0 {
				return
			}
			out[fp.Partition] = fp.Records[0].Timestamp
			cl.PauseFetchPartitions(map[string][]int32{topic: {fp.Partition}})
		})
	}
	return out, nil
}
