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
// Order: a producer that gives up on a record (retries exhausted while the
// broker is away) may still deliver the records queued behind it on the same
// partition, so a batch holding two events of one aggregate could land the
// second without the first, and the relay's re-publish would then put the
// first after it (TestRelayBrokerDown caught OrderPaid before StockReserved).
// Publish therefore sends in waves: wave j holds the j-th event of every
// aggregate in the batch and goes out only once wave j-1 is acknowledged in
// full. An aggregate has at most one event in flight, so whatever fails, its
// events reach the log in outbox order; a batch costs as many round trips as
// its busiest aggregate has events (2–3 for an order), not one per event.
// The relay needs no lanes with it (RelayConfig.Lanes 1).
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
	waves, err := p.waves(topic, msgs)
	if err != nil {
		return err
	}
	sent := 0
	for i, w := range waves {
		if err := p.producer.SendMessages(w); err != nil {
			return fmt.Errorf("publish %d events (wave %d of %d, %d events acknowledged before it): %w",
				len(msgs), i+1, len(waves), sent, err)
		}
		sent += len(w)
	}
	return nil
}

// waves marshals msgs and splits them so that the j-th event of each
// aggregate is in wave j, keeping the given order inside a wave.
func (p *BatchPublisher) waves(topic string, msgs []*message.Message) ([][]*sarama.ProducerMessage, error) {
	var waves [][]*sarama.ProducerMessage
	seen := make(map[string]int, len(msgs))
	for _, m := range msgs {
		r, err := p.marshaler.Marshal(topic, m)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", m.UUID, err)
		}
		agg := m.Metadata.Get(MetadataAggregateID)
		j := seen[agg]
		seen[agg] = j + 1
		if j == len(waves) {
			waves = append(waves, nil)
		}
		waves[j] = append(waves[j], r)
	}
	return waves, nil
}

// Close flushes and closes the producer.
func (p *BatchPublisher) Close() error { return p.producer.Close() }
