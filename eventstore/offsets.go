package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Offsets are the start (first record) and end (next offset to be written)
// of every partition of a topic.
type Offsets struct {
	Starts, Ends map[int32]int64
}

// ReadOffsets returns the offsets of every partition of topic.
func ReadOffsets(ctx context.Context, brokers []string, topic string) (Offsets, error) {
	cl, err := newClient(brokers, "seckill-reader")
	if err != nil {
		return Offsets{}, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	defer cl.Close()
	return OffsetRange(ctx, cl, topic)
}

// EndOffsets returns the end offset (high watermark) of every partition of
// topic: one past its last record, the offset the next record will get.
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int32]int64, error) {
	offs, err := ReadOffsets(ctx, brokers, topic)
	return offs.Ends, err
}

// OffsetRange returns, through an open client (NewAdminClient), the offsets
// of every partition of topic.
func OffsetRange(ctx context.Context, cl *kgo.Client, topic string) (Offsets, error) {
	partitions, err := topicPartitions(ctx, cl, topic)
	if err != nil {
		return Offsets{}, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	var offs Offsets
	if offs.Starts, err = listOffsets(ctx, cl, topic, partitions, -2); err != nil {
		return Offsets{}, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	if offs.Ends, err = listOffsets(ctx, cl, topic, partitions, -1); err != nil {
		return Offsets{}, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	return offs, nil
}

// topicPartitions returns the partition ids of topic.
func topicPartitions(ctx context.Context, cl *kgo.Client, topic string) ([]int32, error) {
	resp, err := topicMetadata(ctx, cl, topic)
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

// topicMetadata asks the cluster for the metadata of topic alone.
func topicMetadata(ctx context.Context, cl *kgo.Client, topic string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	return req.RequestWith(ctx, cl)
}
