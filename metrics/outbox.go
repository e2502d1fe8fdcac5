package metrics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/outbox"
)

// OutboxConfig configures an OutboxCollector.
type OutboxConfig struct {
	// OutboxesKey is the Redis set listing every outbox stream
	// (commands.Gate.OutboxesKey). Required.
	OutboxesKey string
	// Relay, if set, is the relay of this process: its counters are exported too.
	Relay *outbox.Relay
	// Timeout bounds the Redis reads of one scrape. Default 2s.
	Timeout time.Duration
	// MaxStreams bounds the streams read per scrape (two commands each, in
	// one pipeline); beyond it the depth and lag are of the first MaxStreams
	// streams in the set's order and seckill_outbox_streams tells how many
	// there are. Default 10000.
	MaxStreams int
}

func (c *OutboxConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = 10_000
	}
}

// Validate reports every invalid field, joined.
func (c OutboxConfig) Validate() error {
	var errs []error
	if c.OutboxesKey == "" {
		errs = append(errs, errors.New("outboxes key is empty"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %v: must be positive", c.Timeout))
	}
	if c.MaxStreams < 1 {
		errs = append(errs, fmt.Errorf("max streams %d: must be at least 1", c.MaxStreams))
	}
	return errors.Join(errs...)
}

// OutboxCollector reports, at scrape time, how far the log is behind the
// gate: the entries waiting in the Redis outboxes and the age of the oldest
// one (the relay's lag: an entry's stream id is its append time in ms), and,
// with a Relay, what this relay has forwarded. Register it on the nodes that
// run the relay; the outbox numbers are the same from every node.
type OutboxCollector struct {
	cfg OutboxConfig
	rdb redis.UniversalClient

	depth, lag, streams, up                               *prometheus.Desc
	forwarded, entries, batches, quarantined, errs, lastF *prometheus.Desc
}

// NewOutboxCollector returns a collector of the outboxes in rdb; register it
// on the process's registry.
func NewOutboxCollector(cfg OutboxConfig, rdb redis.UniversalClient) (*OutboxCollector, error) {
	cfg.setDefaults()
	err := cfg.Validate()
	if rdb == nil {
		err = errors.Join(err, errors.New("redis client is nil"))
	}
	if err != nil {
		return nil, fmt.Errorf("outbox metrics: %w", err)
	}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil)
	}
	return &OutboxCollector{
		cfg: cfg, rdb: rdb,
		depth:       d("outbox_entries", "Outbox entries (commands) waiting in Redis to be forwarded to the log, over every outbox stream."),
		lag:         d("relay_lag_seconds", "Age of the oldest outbox entry not yet forwarded: how far the log is behind the gate (0 when every outbox is empty)."),
		streams:     d("outbox_streams", "Outbox streams (one per sale)."),
		up:          d("outbox_scrape_ok", "1 if the last scrape could read the outboxes, 0 if Redis failed (then the depth and lag are not reported)."),
		forwarded:   d("relay_forwarded_events_total", "Events this relay published to the log (after Kafka acknowledged them)."),
		entries:     d("relay_entries_total", "Outbox entries this relay trimmed after publishing their events."),
		batches:     d("relay_batches_total", "Batches this relay published and trimmed."),
		quarantined: d("relay_quarantined_total", "Unreadable outbox entries this relay moved to a dead-letter stream."),
		errs:        d("relay_errors_total", "Failed relay attempts (Redis or Kafka), each retried."),
		lastF:       d("relay_last_forward_timestamp_seconds", "When this relay last published a batch (Unix time; 0: never)."),
	}, nil
}

// Describe sends the descriptors of every metric.
func (c *OutboxCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.lag, c.streams, c.up} {
		ch <- d
	}
	if c.cfg.Relay != nil {
		for _, d := range []*prometheus.Desc{c.forwarded, c.entries, c.batches, c.quarantined, c.errs, c.lastF} {
			ch <- d
		}
	}
}

// Collect reads the outboxes and the relay's stats.
func (c *OutboxCollector) Collect(ch chan<- prometheus.Metric) {
	if r := c.cfg.Relay; r != nil {
		s := r.Stats()
		ch <- prometheus.MustNewConstMetric(c.forwarded, prometheus.CounterValue, float64(s.Forwarded))
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.CounterValue, float64(s.Entries))
		ch <- prometheus.MustNewConstMetric(c.batches, prometheus.CounterValue, float64(s.Batches))
		ch <- prometheus.MustNewConstMetric(c.quarantined, prometheus.CounterValue, float64(s.Quarantined))
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(s.Errors))
		last := 0.0
		if !s.LastForwardAt.IsZero() {
			last = float64(s.LastForwardAt.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(c.lastF, prometheus.GaugeValue, last)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	st, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(st.streams))
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.depth))
	lag := 0.0
	if !st.oldest.IsZero() {
		lag = max(0, time.Since(st.oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag)
}

// outboxState is what the outboxes hold at one moment.
type outboxState struct {
	streams int
	depth   int64
	oldest  time.Time // append time of the oldest waiting entry; zero if none
}

// read lists the streams and reads each one's length and first entry in one
// pipeline (on a cluster, go-redis splits it per node: each stream is a key
// of its sale's slot).
func (c *OutboxCollector) read(ctx context.Context) (outboxState, error) {
	streams, err := c.rdb.SMembers(ctx, c.cfg.OutboxesKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return outboxState{}, fmt.Errorf("list outboxes: %w", err)
	}
	st := outboxState{streams: len(streams)}
	if len(streams) > c.cfg.MaxStreams {
		streams = streams[:c.cfg.MaxStreams]
	}
	if len(streams) == 0 {
		return st, nil
	}
	lens := make([]*redis.IntCmd, len(streams))
	firsts := make([]*redis.XMessageSliceCmd, len(streams))
	_, err = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range streams {
			lens[i] = p.XLen(ctx, s)
			firsts[i] = p.XRangeN(ctx, s, "-", "+", 1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return outboxState{}, fmt.Errorf("read outboxes: %w", err)
	}
	for i := range streams {
		st.depth += lens[i].Val()
		if first := firsts[i].Val(); len(first) > 0 {
			if t, ok := streamIDTime(first[0].ID); ok && (st.oldest.IsZero() || t.Before(st.oldest)) {
				st.oldest = t
			}
		}
	}
	return st, nil
}

// streamIDTime returns the time in a stream id "<ms>-<seq>": Redis makes it
// from its clock when XADD is given "*", as the gate's scripts do.
func streamIDTime(id string) (time.Time, bool) {
	msPart, _, _ := strings.Cut(id, "-")
	ms, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
