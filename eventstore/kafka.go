package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/seckill/seckill/domain"
)

// Defaults of the log, as CONTRACTS.md states them.
const (
	// DefaultTopic is the topic that holds every event.
	DefaultTopic = "seckill.events"
	// DefaultPartitions is the partition count the topic is created with. It
	// bounds how many consumers of one group can work in parallel; changing it
	// later moves keys to other partitions and breaks per-aggregate order for
	// the events around the change, so pick it once.
	DefaultPartitions = 16
)

// Metadata keys of a watermill message of the log; watermill-kafka carries them
// as Kafka record headers.
const (
	// MetadataType is the event type (domain.Type*).
	MetadataType = "type"
	// MetadataAggregateID is the envelope's aggregate id; the publisher uses
	// it as the record key, so one aggregate's events land in one partition
	// and stay in order.
	MetadataAggregateID = "aggregate_id"
)

// saramaVersion is the protocol level sarama speaks. Idempotent production
// needs at least 0.11. It must stay below 2.4: from 2.4 on sarama sends
// OffsetFetch v6 (the first flexible version) and fails to decode a null
// metadata string ("invalid byteslice length"), which kfake returns for every
// partition a group has not committed yet, so a new consumer group never gets
// going. Kafka itself sends "" there, but the embedded broker is kfake. Every
// request version sarama uses at 2.3 is still accepted by Kafka 4 (which
// dropped the pre-2.1 ones). Produce is v7 either way: sarama goes no higher.
var saramaVersion = sarama.V2_3_0_0

// ToMessage turns one envelope JSON (a Redis outbox value, a log record value)
// into the watermill message the log stores: UUID = envelope id, payload = the
// JSON unchanged, metadata type and aggregate_id. Only the envelope is parsed,
// never the payload, so the relay forwards event types this build does not
// know yet.
func ToMessage(envJSON []byte) (*message.Message, error) {
	env, err := domain.DecodeEnvelope(envJSON)
	if err != nil {
		return nil, err
	}
	if env.AggregateID == "" {
		return nil, fmt.Errorf("envelope %s: missing aggregate_id", env.ID)
	}
	msg := message.NewMessage(env.ID, envJSON)
	msg.Metadata.Set(MetadataType, env.Type)
	msg.Metadata.Set(MetadataAggregateID, env.AggregateID)
	return msg, nil
}

// marshaler keys records by the aggregate_id metadata and, when reading, fills
// in what a record written by something other than watermill lacks.
type marshaler struct {
	kafka.MarshalerUnmarshaler
}

func newMarshaler() marshaler {
	return marshaler{kafka.NewWithPartitioningMarshaler(func(_ string, msg *message.Message) (string, error) {
		key := msg.Metadata.Get(MetadataAggregateID)
		if key == "" {
			// An unkeyed record would land on an arbitrary partition and
			// could overtake the earlier events of its aggregate.
			return "", fmt.Errorf("message %s has no %s metadata", msg.UUID, MetadataAggregateID)
		}
		return key, nil
	})}
}

// Unmarshal reads a record as watermill wrote it; a record without watermill's
// UUID header (written by another tool) gets its UUID and metadata from the
// envelope, so consumers can still deduplicate by id. A record that has
// neither is passed on with an empty UUID rather than refused: watermill-kafka
// retries a record it cannot unmarshal forever, which would stall its
// partition, while the projections dead-letter it and move on.
func (m marshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	msg, err := m.MarshalerUnmarshaler.Unmarshal(rec)
	if err != nil || msg.UUID != "" {
		return msg, err
	}
	env, err := domain.DecodeEnvelope(rec.Value)
	if err != nil {
		return msg, nil
	}
	msg.UUID = env.ID
	msg.Metadata.Set(MetadataType, env.Type)
	msg.Metadata.Set(MetadataAggregateID, env.AggregateID)
	return msg, nil
}

// watermillLogger adapts l (nil: discard) for watermill.
func watermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	if l == nil {
		return watermill.NopLogger{}
	}
	// watermill reports every (re)start of a consumer at info level; in a
	// service log that is noise, so its info goes to debug.
	return levelGate{watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}), l}
}

// levelGate drops watermill's trace, debug and info lines before they are
// built. The publisher logs two trace lines per message, and watermill's
// slog adapter turns their fields into attributes (allocating) before slog
// looks at the level: ~3% of a relay's CPU for lines nobody sees.
type levelGate struct {
	watermill.LoggerAdapter
	l *slog.Logger
}

func (g levelGate) on(level slog.Level) bool { return g.l.Enabled(context.Background(), level) }

func (g levelGate) Trace(msg string, fields watermill.LogFields) {
	if g.on(watermill.LevelTrace) {
		g.LoggerAdapter.Trace(msg, fields)
	}
}

func (g levelGate) Debug(msg string, fields watermill.LogFields) {
	if g.on(slog.LevelDebug) {
		g.LoggerAdapter.Debug(msg, fields)
	}
}

// Info is mapped to debug (watermillLogger).
func (g levelGate) Info(msg string, fields watermill.LogFields) {
	if g.on(slog.LevelDebug) {
		g.LoggerAdapter.Info(msg, fields)
	}
}

func (g levelGate) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return levelGate{g.LoggerAdapter.With(fields), g.l}
}

// baseSaramaConfig holds what the producer and the consumer share.
func baseSaramaConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = saramaVersion
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 30 * time.Second
	c.Net.WriteTimeout = 30 * time.Second
	// Only ask for the topics we use, not the whole cluster's metadata.
	c.Metadata.Full = false
	c.Metadata.Retry.Max = 5
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	return c
}

// publisherSaramaConfig configures the producer as the writer of the source of
// truth: a record counts as written only once every in-sync replica has it,
// and retries never duplicate or reorder records within a partition.
func publisherSaramaConfig() *sarama.Config {
	c := baseSaramaConfig("seckill-relay")
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	// Idempotence in sarama requires one request in flight per broker; it is
	// also what keeps a retried batch from landing behind a later one.
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Timeout = 10 * time.Second
	c.Producer.Return.Successes = true // required by the sync producer
	c.Producer.Return.Errors = true
	// The default hash partitioner (FNV-1a of the key) keeps an aggregate on
	// one partition. Every writer of the topic must use the same one.
	c.Producer.Partitioner = sarama.NewHashPartitioner
	return c
}

// subscriberSaramaConfig configures a consumer group member.
func subscriberSaramaConfig() *sarama.Config {
	c := baseSaramaConfig("seckill")
	c.Consumer.Return.Errors = true
	// sarama starts a group that has no committed offset at the NEWEST offset
	// by default, which would silently skip every event written before the
	// group first joined. A projection must see the whole log.
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Offsets.AutoCommit.Interval = time.Second
	// A dead member is noticed after the session timeout; kfake and Kafka
	// accept 6s to 5m by default.
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 3 * time.Second
	c.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	c.Consumer.Group.Rebalance.Retry.Max = 10
	c.Consumer.Group.Rebalance.Retry.Backoff = time.Second
	c.Consumer.MaxWaitTime = 250 * time.Millisecond
	return c
}

// Publisher writes the log (the outbox relay publishes through one);
// *kafka.Publisher from NewPublisher is one. Publish returns nil only once
// every message is durably in the log, and must be safe for concurrent use:
// the relay publishes from several lanes at once.
type Publisher interface {
	Publish(topic string, msgs ...*message.Message) error
}

// NewPublisher returns a watermill-kafka publisher that writes the log as
// CONTRACTS.md specifies: acks from all in-sync replicas, idempotent, one
// request in flight, record key = the aggregate_id metadata (a message without
// it is refused). Its Publish sends messages one by one and waits for each
// ack, so callers that need throughput publish from several goroutines, as
// the Relay does. Close it only after every Publish has returned (after
// Relay.Run): watermill-kafka does not guard its closed flag. logger may be
// nil.
func NewPublisher(brokers []string, logger *slog.Logger) (*kafka.Publisher, error) {
	if len(brokers) == 0 {
		return nil, errors.New("new publisher: no brokers")
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:               brokers,
		Marshaler:             newMarshaler(),
		OverwriteSaramaConfig: publisherSaramaConfig(),
	}, watermillLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("new publisher %v: %w", brokers, err)
	}
	return pub, nil
}

// NewSubscriber returns a watermill-kafka subscriber in consumerGroup. A group
// that has never committed starts at the oldest offset (not sarama's default,
// the newest). Offsets of acked messages are committed every second, so after
// a crash up to a second of messages is delivered again: handlers must be
// idempotent (deduplicate by message UUID = event id). The group name is
// durable state: renaming it re-consumes the whole log. logger may be nil.
func NewSubscriber(brokers []string, consumerGroup string, logger *slog.Logger) (*kafka.Subscriber, error) {
	var errs []error
	if len(brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if consumerGroup == "" {
		// Without a group watermill-kafka reads from the start every time
		// and commits nothing; use ReadAll for that.
		errs = append(errs, errors.New("no consumer group"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new subscriber: %w", err)
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               brokers,
		Unmarshaler:           newMarshaler(),
		OverwriteSaramaConfig: subscriberSaramaConfig(),
		ConsumerGroup:         consumerGroup,
		NackResendSleep:       100 * time.Millisecond,
		ReconnectRetrySleep:   time.Second,
	}, watermillLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("new subscriber %s: %w", consumerGroup, err)
	}
	return sub, nil
}
