package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	parts, err := partitions(ctx, cl, topic)
	if err != nil {
		return Offsets{}, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	var o Offsets
	if o.Starts, err = listOffsets(ctx, cl, topic, parts, -2); err != nil {
		return Offsets{}, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	if o.Ends, err = listOffsets(ctx, cl, topic, parts, -1); err != nil {
		return Offsets{}, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	return o, nil
}

// partitions returns the partition ids of topic.
func partitions(ctx context.Context, cl *kgo.Client, topic string) ([]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if len(resp.Topics) != 1 {
		return nil, fmt.Errorf("metadata: %d topics in response", len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return nil, err
	}
	ps := make([]int32, 0, len(resp.Topics[0].Partitions))
	for _, p := range resp.Topics[0].Partitions {
		ps = append(ps, p.Partition)
	}
	if len(ps) == 0 {
		return nil, errors.New("topic has no partitions")
	}
	return ps, nil
}

// listOffsets asks for the offset of every partition at timestamp ts (-1:
// the end, -2: the start).
func listOffsets(ctx context.Context, cl *kgo.Client, topic string, parts []int32, ts int64) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range parts {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.CurrentLeaderEpoch = -1
		rp.Timestamp = ts
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl) // the client splits it by leader
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(parts))
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("partition %d: %w", p.Partition, err)
			}
			out[p.Partition] = p.Offset
		}
	}
	if len(out) != len(parts) {
		return nil, fmt.Errorf("%d of %d partitions answered", len(out), len(parts))
	}
	return out, nil
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
