package metrics

import (
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seckill/seckill/eventstore"
)

// Publisher times the relay's publishes to Kafka: each call is one lane of a
// batch, and returns once every message of it is acknowledged (acks=all), so
// its duration is what the log's durability costs the relay.
type Publisher struct {
	next     eventstore.Publisher
	latency  *prometheus.HistogramVec
	messages *prometheus.CounterVec
}

// NewPublisher registers the Kafka publish metrics on reg and returns next
// wrapped in them.
func NewPublisher(reg prometheus.Registerer, next eventstore.Publisher) (*Publisher, error) {
	if next == nil {
		return nil, fmt.Errorf("kafka metrics: nil publisher")
	}
	p := &Publisher{
		next: next,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "kafka", Name: "publish_duration_seconds",
			Help:    "Publishing one lane of a relay batch to Kafka until every message is acknowledged, by outcome.",
			Buckets: latencyBuckets,
		}, []string{"outcome"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "kafka", Name: "published_messages_total",
			Help: "Messages (events) handed to the Kafka producer, by outcome; a failed batch is retried, so errors are counted again when resent.",
		}, []string{"outcome"}),
	}
	if err := register(reg, p.latency, p.messages); err != nil {
		return nil, fmt.Errorf("kafka metrics: %w", err)
	}
	return p, nil
}

// Publish publishes through the wrapped publisher and observes the call.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	start := time.Now()
	err := p.next.Publish(topic, msgs...)
	o := outcome(err)
	p.latency.WithLabelValues(o).Observe(since(start))
	p.messages.WithLabelValues(o).Add(float64(len(msgs)))
	return err
}
