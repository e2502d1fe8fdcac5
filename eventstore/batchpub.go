package eventstore

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

// BatchPublisher writes the log exactly as NewPublisher's publisher does —
// the same producer configuration (CONTRACTS.md: acks from all in-sync
// replicas, idempotent, one request in flight, the hash partitioner) and the
// same records (watermill's marshaler: key = aggregate_id, the metadata and
// the message UUID as headers) — but hands all the messages of one Publish
// to the producer at once, where watermill-kafka sends them one by one and
// waits for each ack. The producer then packs a whole relay batch into a few
// produce requests with one record batch per partition, instead of a request
// per round of acks: the relay, the broker's produce and every consumer's
// fetch work per record batch, so bigger batches cost each event less
// (docs/performance.md, issue 13).
//
// Order: the messages enter the producer in the order given and a partition
// keeps it (one request in flight, idempotent retries), so one Publish keeps
// the order of every aggregate's events; the relay needs no lanes with it
// (RelayConfig.Lanes 1).
type BatchPublisher struct {
	producer  sarama.SyncProducer
	marshaler marshaler
}

// NewBatchPublisher connects a BatchPublisher to brokers. Close it once every
// Publish has returned.
func NewBatchPublisher(brokers []string) (*BatchPublisher, error) {
	if len(brokers) == 0 {
		return nil, errors.New("new batch publisher: no brokers")
	}
	p, err := sarama.NewSyncProducer(brokers, publisherSaramaConfig())
	if err != nil {
		return nil, fmt.Errorf("new batch publisher %v: %w", brokers, err)
	}
	return &BatchPublisher{producer: p, marshaler: newMarshaler()}, nil
}

// Publish writes msgs to topic and returns nil once every one is in the log.
// On error some may be in the log and others not; the caller publishes them
// all again (at-least-once, consumers deduplicate by event id).
func (p *BatchPublisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	records := make([]*sarama.ProducerMessage, len(msgs))
	for i, m := range msgs {
		r, err := p.marshaler.Marshal(topic, m)
		if err != nil {
			return fmt.Errorf("publish %s: %w", m.UUID, err)
		}
		records[i] = r
	}
	if err := p.producer.SendMessages(records); err != nil {
		return fmt.Errorf("publish %d events: %w", len(msgs), err)
	}
	return nil
}

// Close flushes and closes the producer.
func (p *BatchPublisher) Close() error { return p.producer.Close() }
