package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record of the log as the reader returns it. Value is the
// envelope JSON (domain.Decode), Key its aggregate id.
type Record struct {
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
}

// ReadAll reads topic directly, without a consumer group (so nothing is
// committed and no group's position moves): every partition from its first
// record up to its end offset as of the call, then returns nil. Records of one
// partition come in offset order; partitions interleave. fn is called from
// one goroutine; an error from it stops the read and is returned unwrapped.
// For rebuilds, audits, restores and analysts' exports.
func ReadAll(ctx context.Context, brokers []string, topic string, fn func(rec Record) error) error {
	starts, ends, err := offsetRange(ctx, brokers, topic)
	if err != nil {
		return err
	}
	remaining := map[int32]int64{} // partition → its end offset
	parts := map[int32]kgo.Offset{}
	for p, end := range ends {
		if starts[p] < end {
			remaining[p] = end
			parts[p] = kgo.NewOffset().At(starts[p])
		}
	}
	if len(parts) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("seckill-reader"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		// Records below the end can be gone if retention deleted them
		// since we listed offsets: continue from the new start.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Transaction markers take offsets too; we must see them to know
		// when a partition whose last offsets are markers is done.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()

	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w", topic, context.Cause(ctx))
		}
		for _, fe := range fetches.Errors() {
			return fmt.Errorf("read %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		var ferr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			end, ok := remaining[fp.Partition]
			if !ok || ferr != nil {
				return
			}
			for _, rec := range fp.Records {
				if rec.Offset >= end {
					break
				}
				if !rec.Attrs.IsControl() {
					if err := fn(Record{
						Partition: rec.Partition,
						Offset:    rec.Offset,
						Timestamp: rec.Timestamp,
						Key:       rec.Key,
						Value:     rec.Value,
					}); err != nil {
						ferr = err
						return
					}
				}
				if rec.Offset == end-1 {
					break
				}
			}
			if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset >= end-1 {
				delete(remaining, fp.Partition)
				// Records written after the call are not ours to read.
				cl.PauseFetchPartitions(map[string][]int32{topic: {fp.Partition}})
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// EndOffsets returns the end offset (high watermark) of every partition of
// topic: one past its last record, the offset the next record will get.
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int32]int64, error) {
	_, ends, err := offsetRange(ctx, brokers, topic)
	return ends, err
}

// offsetRange returns the start and end offsets of every partition of topic.
func offsetRange(ctx context.Context, brokers []string, topic string) (starts, ends map[int32]int64, err error) {
	if len(brokers) == 0 {
		return nil, nil, fmt.Errorf("offsets of %s: no brokers", topic)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("seckill-reader"))
	if err != nil {
		return nil, nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	defer cl.Close()
	return OffsetRange(ctx, cl, topic)
}

// OffsetRange returns, through an open client, the start (first record) and
// end (next offset to be written) of every partition of topic.
func OffsetRange(ctx context.Context, cl *kgo.Client, topic string) (starts, ends map[int32]int64, err error) {
	partitions, err := topicPartitions(ctx, cl, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	if starts, err = listOffsets(ctx, cl, topic, partitions, -2); err != nil {
		return nil, nil, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	if ends, err = listOffsets(ctx, cl, topic, partitions, -1); err != nil {
		return nil, nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	return starts, ends, nil
}

// topicPartitions returns the partition ids of topic.
func topicPartitions(ctx context.Context, cl *kgo.Client, topic string) ([]int32, error) {
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

// listOffsets asks for the offset of every partition at timestamp ts (-1: the
// end, -2: the start, a Unix millisecond time: the first record at or after
// it, or the end if none).
func listOffsets(ctx context.Context, cl *kgo.Client, topic string, partitions []int32, ts int64) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.CurrentLeaderEpoch = -1
		rp.Timestamp = ts
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	// The client splits the request by partition leader and merges the
	// answers.
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(partitions))
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("partition %d: %w", p.Partition, err)
			}
			out[p.Partition] = p.Offset
		}
	}
	if len(out) != len(partitions) {
		return nil, fmt.Errorf("%d of %d partitions answered", len(out), len(partitions))
	}
	return out, nil
}
