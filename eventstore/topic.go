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

// EnsureTopic creates topic with partitions partitions unless it exists; an
// existing topic is left as it is (its partition count is not changed, since
// that would move keys between partitions). A new topic is replicated on up to
// three brokers (at least two of them must acknowledge a write) and keeps its
// records forever: the log is the source of truth, and Kafka's default
// retention of seven days would silently delete it. EnsureTopic returns once
// every partition has a leader, so a producer can write at once.
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	var errs []error
	if len(brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if topic == "" {
		errs = append(errs, errors.New("no topic"))
	}
	if partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions %d < 1", partitions))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ensure topic %q: %w", topic, err)
	}
	cl, err := newClient(brokers, "seckill-admin")
	if err != nil {
		return fmt.Errorf("ensure topic %s: %w", topic, err)
	}
	defer cl.Close()

	nbrokers, _, err := describeTopic(ctx, cl, topic)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("ensure topic %s: %w", topic, err)
	}

	rf := min(3, nbrokers)
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30_000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = int32(partitions)
	rt.ReplicationFactor = int16(rf)
	configs := map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}
	if rf >= 3 {
		// With acks=all, a write then survives the loss of any one broker.
		configs["min.insync.replicas"] = "2"
	}
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("create topic %s: %d topics in response", topic, len(resp.Topics))
	}
	// Another process may have created it since we looked: that is success.
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		msg := ""
		if m := resp.Topics[0].ErrorMessage; m != nil {
			msg = ": " + *m
		}
		return fmt.Errorf("create topic %s (%d partitions, rf %d): %w%s", topic, partitions, rf, err, msg)
	}

	// Creation is asynchronous on a real cluster: wait until the metadata
	// shows a leader for every partition.
	for {
		_, ready, err := describeTopic(ctx, cl, topic)
		if err == nil && ready {
			return nil
		}
		if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, kerr.LeaderNotAvailable) {
			return fmt.Errorf("ensure topic %s: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ensure topic %s: waiting for leaders: %w", topic, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// describeTopic returns the number of brokers in the cluster and whether every
// partition of topic has a leader; the error is kerr.UnknownTopicOrPartition
// when the topic does not exist.
func describeTopic(ctx context.Context, cl *kgo.Client, topic string) (brokers int, ready bool, err error) {
	resp, err := topicMetadata(ctx, cl, topic)
	if err != nil {
		return 0, false, err
	}
	if len(resp.Topics) != 1 {
		return len(resp.Brokers), false, fmt.Errorf("metadata of %s: %d topics in response", topic, len(resp.Topics))
	}
	t := resp.Topics[0]
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		return len(resp.Brokers), false, err
	}
	ready = len(t.Partitions) > 0
	for _, p := range t.Partitions {
		if p.ErrorCode != 0 || p.Leader < 0 {
			ready = false
		}
	}
	return len(resp.Brokers), ready, nil
}
