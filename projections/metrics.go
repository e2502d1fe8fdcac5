package projections

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics the projections of this process update
// as they apply (the positions and lag come from a Monitor, which reads them
// from Postgres and Kafka at scrape time). A nil *Metrics records nothing.
type Metrics struct {
	events  *prometheus.CounterVec
	batches *prometheus.CounterVec
	retries *prometheus.CounterVec
	commit  *prometheus.HistogramVec
	lag     *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seckill_projection_events_total",
			Help: "Log records a projection handled in this process, by outcome: applied, skipped (at or below its position: redelivered) or dead_lettered.",
		}, []string{"projection", "outcome"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seckill_projection_batches_total",
			Help: "Transactions a projection committed in this process.",
		}, []string{"projection"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seckill_projection_apply_failures_total",
			Help: "Failed attempts to apply a batch (retried with backoff): Postgres unavailable, for instance.",
		}, []string{"projection"}),
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "seckill_projection_batch_seconds",
			Help:    "Time to apply and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1ms .. 8s
		}, []string{"projection"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "seckill_projection_event_lag_seconds",
			Help:    "From an event's occurrence (the gate's decision) to the commit of its read model.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"projection"}),
	}
	for _, c := range []prometheus.Collector{m.events, m.batches, m.retries, m.commit, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) committed(name string, res ApplyResult, took time.Duration) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(name, "applied").Add(float64(res.Applied))
	m.events.WithLabelValues(name, "skipped").Add(float64(res.Skipped))
	m.events.WithLabelValues(name, "dead_lettered").Add(float64(res.DeadLettered))
	m.batches.WithLabelValues(name).Inc()
	m.commit.WithLabelValues(name).Observe(took.Seconds())
}

func (m *Metrics) retried(name string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(name).Inc()
}

func (m *Metrics) observeLag(name string, events []Event, now time.Time) {
	if m == nil {
		return
	}
	h := m.lag.WithLabelValues(name)
	for _, e := range events {
		h.Observe(now.Sub(e.Envelope.OccurredAt).Seconds())
	}
}
