package eventstore

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Every franz-go client of the system is made in this file (the relay's
// sarama producer is made in kafka.go), so what all of them share, the seed
// brokers and a client id that names the part in the broker's logs, and
// whatever a deployment adds to them (TLS, SASL), is said once.

// newClient returns a client of brokers called id, with opts.
func newClient(brokers []string, id string, opts ...kgo.Opt) (*kgo.Client, error) {
	if len(brokers) == 0 {
		return nil, errors.New("no brokers")
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(id)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client %s: %w", id, err)
	}
	return cl, nil
}

// NewGroupClient returns a client that consumes topic as a member of the
// consumer group group (a projection's consumer). opts tune it: where it
// starts, how it commits, what it does on a rebalance.
func NewGroupClient(brokers []string, group, topic string, opts ...kgo.Opt) (*kgo.Client, error) {
	if group == "" || topic == "" {
		return nil, fmt.Errorf("group client: group %q and topic %q are required", group, topic)
	}
	return newClient(brokers, "seckill-projection-"+group,
		append([]kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic)}, opts...)...)
}

// NewProducer returns a client called id that writes to topic the way the
// relay writes the log: acknowledged by every in-sync replica, and keyed
// records on the partition the relay would choose (Partitioner), so that an
// aggregate's records stay together in any topic keyed like the log (its
// dead letters).
func NewProducer(brokers []string, id, topic string) (*kgo.Client, error) {
	return newClient(brokers, id, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(Partitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
}

// NewAdminClient returns a client called id for metadata and offset requests
// (OffsetRange), which a long-lived reader of the log's offsets keeps open.
func NewAdminClient(brokers []string, id string) (*kgo.Client, error) {
	return newClient(brokers, id)
}
