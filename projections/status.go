package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/eventstore"
)

// Inferred states of a projection, beside the Consumer states of a projection
// running in this process.
const (
	StateCaughtUp   State = "caught_up"   // nothing left to apply
	StateCatchingUp State = "catching_up" // behind, and its position moved lately
	StateStalled    State = "stalled"     // behind, and its position has not moved for StalledAfter
)

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Topic is the log's topic. Default DefaultTopic.
	Topic string
	// CacheFor is how long a computed status is reused, so that dashboards
	// and scrapes do not each read Kafka and Postgres. Default 1s; negative:
	// never reused.
	CacheFor time.Duration
	// StalledAfter is how long a projection that is behind may go without
	// moving its position before its state is "stalled". Default 30s.
	StalledAfter time.Duration
	// Logger receives scrape failures. Default slog.Default().
	Logger *slog.Logger
}

func (c *MonitorConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.CacheFor == 0 {
		c.CacheFor = time.Second
	}
	if c.StalledAfter == 0 {
		c.StalledAfter = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every invalid field, joined.
func (c MonitorConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if c.StalledAfter <= 0 {
		errs = append(errs, fmt.Errorf("stalled-after %s <= 0", c.StalledAfter))
	}
	return errors.Join(errs...)
}

// Target is one projection a Monitor watches.
type Target struct {
	// Name is the projection's name.
	Name string
	// Pool is the database it writes (its positions and dead letters).
	Pool *pgxpool.Pool
	// CheckpointTable and DeadLetterTable default to DefaultCheckpointTable
	// and DefaultDeadLetterTable.
	CheckpointTable, DeadLetterTable string
	// Runner, if set, is the projection running in this process; its state
	// is reported as is. Without it the state is inferred from the lag.
	Runner interface{ Status() RunnerStatus }
}

// ProjectionStatus is how far one projection is.
type ProjectionStatus struct {
	Projection string `json:"projection"`
	State      State  `json:"state"`
	// Applied is the number of records at or below the positions: applied,
	// skipped or dead-lettered. LogEnd is the number of records in the log.
	Applied int64 `json:"applied"`
	LogEnd  int64 `json:"log_end"`
	// LagEvents is LogEnd - Applied: records not applied yet.
	LagEvents int64 `json:"lag_events"`
	// LagSeconds is the age of the oldest record not applied yet (0 when
	// caught up).
	LagSeconds float64 `json:"lag_seconds"`
	// DeadLetters is the records the projection could not apply;
	// Unpublished those not on the dead-letter topic yet.
	DeadLetters            int64 `json:"dead_letters"`
	DeadLettersUnpublished int64 `json:"dead_letters_unpublished"`
	// LastApplied is when a position last moved.
	LastApplied time.Time           `json:"last_applied,omitzero"`
	Partitions  []PartitionPosition `json:"partitions"`
	// Runner is the in-process Consumer's status, if it runs here.
	Runner *RunnerStatus `json:"runner,omitempty"`
	// Rebuild is set while a rebuild into shadow tables is under way.
	Rebuild *RebuildState `json:"rebuild,omitempty"`
	// Error says why the status is incomplete, if it is.
	Error string `json:"error,omitempty"`
}

// PartitionPosition is a projection's position in one partition.
type PartitionPosition struct {
	Partition int32 `json:"partition"`
	// Position is the last offset applied (-1: none).
	Position int64 `json:"position"`
	// End is the partition's end offset (the next offset to be written).
	End        int64   `json:"end"`
	LagEvents  int64   `json:"lag_events"`
	LagSeconds float64 `json:"lag_seconds"`
}

// RebuildState is the progress of a rebuild seen from outside it.
type RebuildState struct {
	Schema    string `json:"schema"`
	Applied   int64  `json:"applied"`
	LagEvents int64  `json:"lag_events"`
}

// Monitor computes the status of projections: positions from Postgres, end
// offsets and record timestamps from Kafka. It is also a Prometheus collector
// of the same numbers. It is safe for concurrent use.
type Monitor struct {
	cfg     MonitorConfig
	targets []Target
	cl      *kgo.Client

	mu     sync.Mutex
	cached []ProjectionStatus
	at     time.Time

	lagEvents, lagSeconds, applied, dead, up *prometheus.Desc
}

// NewMonitor returns a Monitor of targets. Close it when done.
func NewMonitor(cfg MonitorConfig, targets ...Target) (*Monitor, error) {
	cfg.setDefaults()
	errs := []error{cfg.Validate()}
	for _, t := range targets {
		if t.Name == "" || t.Pool == nil {
			errs = append(errs, fmt.Errorf("target %q: name and pool are required", t.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new monitor: %w", err)
	}
	cl, err := eventstore.NewAdminClient(cfg.Brokers, "seckill-projections-monitor")
	if err != nil {
		return nil, fmt.Errorf("new monitor: %w", err)
	}
	labels := []string{"projection"}
	return &Monitor{
		cfg: cfg, targets: targets, cl: cl,
		lagEvents:  prometheus.NewDesc("seckill_projection_lag_events", "Records in the log that the projection has not applied yet.", labels, nil),
		lagSeconds: prometheus.NewDesc("seckill_projection_lag_seconds", "Age of the oldest record the projection has not applied yet.", labels, nil),
		applied:    prometheus.NewDesc("seckill_projection_position_records", "Records at or below the projection's positions (summed over partitions).", labels, nil),
		dead:       prometheus.NewDesc("seckill_projection_dead_letters", "Records the projection could not apply (projection_dead_letters).", labels, nil),
		up:         prometheus.NewDesc("seckill_projection_status_up", "1 if the projection's status could be read from Postgres and Kafka.", labels, nil),
	}, nil
}

// Close releases the Monitor's Kafka client.
func (m *Monitor) Close() { m.cl.Close() }

// Status returns the status of every target, in the order given. A target
// whose status cannot be read completely has Error set; the error returned
// is for Kafka being unreachable (then nothing is known about lag).
func (m *Monitor) Status(ctx context.Context) ([]ProjectionStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cached != nil && time.Since(m.at) < m.cfg.CacheFor {
		return m.cached, nil
	}
	offs, err := eventstore.OffsetRange(ctx, m.cl, m.cfg.Topic)
	if err != nil {
		return nil, err
	}
	out := make([]ProjectionStatus, len(m.targets))
	for i, t := range m.targets {
		out[i] = m.status(ctx, t, offs)
	}
	m.cached, m.at = out, time.Now()
	return out, nil
}

func (m *Monitor) status(ctx context.Context, t Target, offs eventstore.Offsets) ProjectionStatus {
	s := ProjectionStatus{Projection: t.Name}
	if t.Runner != nil {
		rs := t.Runner.Status()
		s.Runner = &rs
	}
	var errs []error
	pos, err := ReadPositions(ctx, t.Pool, t.CheckpointTable, t.Name)
	if err != nil {
		errs = append(errs, err)
	}
	at := map[int32]Position{}
	for _, p := range pos {
		if p.Topic == m.cfg.Topic {
			at[p.Partition] = p
			if p.UpdatedAt.After(s.LastApplied) {
				s.LastApplied = p.UpdatedAt.UTC()
			}
		}
	}
	next := map[int32]int64{} // partition → the first offset not applied
	for p, end := range offs.Ends {
		pp := PartitionPosition{Partition: p, Position: -1, End: end}
		if cp, ok := at[p]; ok {
			pp.Position = cp.Offset
		}
		// Records below the log's start are gone; they count as applied.
		first := max(pp.Position+1, offs.Starts[p])
		pp.LagEvents = max(0, end-first)
		s.Applied += end - pp.LagEvents
		s.LogEnd += end
		s.LagEvents += pp.LagEvents
		if pp.LagEvents > 0 {
			next[p] = first
		}
		s.Partitions = append(s.Partitions, pp)
	}
	slices.SortFunc(s.Partitions, func(a, b PartitionPosition) int { return int(a.Partition - b.Partition) })
	if len(next) > 0 {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		times, err := eventstore.RecordTimes(tctx, m.cfg.Brokers, m.cfg.Topic, next, offs.Ends)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
		now := time.Now()
		for i, pp := range s.Partitions {
			if ts, ok := times[pp.Partition]; ok {
				age := max(0, now.Sub(ts).Seconds())
				s.Partitions[i].LagSeconds = age
				s.LagSeconds = max(s.LagSeconds, age)
			}
		}
	}
	n, unpublished, err := countDeadLetters(ctx, t.Pool, t.DeadLetterTable, t.Name)
	if err != nil {
		errs = append(errs, err)
	}
	s.DeadLetters, s.DeadLettersUnpublished = n, unpublished
	if rb, err := rebuildState(ctx, t.Pool, t.Name, offs); err == nil {
		s.Rebuild = rb
	}
	switch {
	case s.Runner != nil && s.Runner.State != StateIdle && s.Runner.State != StateRunning:
		s.State = s.Runner.State // retrying, stopping: say what it is doing
	case s.LagEvents == 0:
		s.State = StateCaughtUp
	case !s.LastApplied.IsZero() && time.Since(s.LastApplied) < m.cfg.StalledAfter:
		s.State = StateCatchingUp
	default:
		s.State = StateStalled
	}
	if err := errors.Join(errs...); err != nil {
		s.Error = err.Error()
	}
	return s
}

// countDeadLetters returns the dead letters of projection, and how many of
// them are not on the dead-letter topic yet.
func countDeadLetters(ctx context.Context, pool *pgxpool.Pool, table, projection string) (all, unpublished int64, err error) {
	if table == "" {
		table = DefaultDeadLetterTable
	}
	t, err := ParseTable(table)
	if err != nil {
		return 0, 0, err
	}
	err = pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM `+string(t)+`
		WHERE projection = $1`, projection).Scan(&all, &unpublished)
	if err != nil {
		return 0, 0, fmt.Errorf("count dead letters of %s: %w", projection, err)
	}
	return all, unpublished, nil
}

// rebuildState returns the progress of a rebuild of projection, or nil if
// none is under way.
func rebuildState(ctx context.Context, pool *pgxpool.Pool, projection string, offs eventstore.Offsets) (*RebuildState, error) {
	schema := ShadowSchema(projection)
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+"."+DefaultCheckpointTable).Scan(&exists); err != nil || !exists {
		return nil, err
	}
	pos, err := ReadPositions(ctx, pool, schema+"."+DefaultCheckpointTable, projection)
	if err != nil {
		return nil, err
	}
	rb := &RebuildState{Schema: schema}
	at := map[int32]int64{}
	for _, p := range pos {
		at[p.Partition] = p.Offset + 1
	}
	for p, end := range offs.Ends {
		done := max(at[p], offs.Starts[p])
		rb.Applied += done
		rb.LagEvents += max(0, end-done)
	}
	return rb, nil
}

// Describe implements prometheus.Collector.
func (m *Monitor) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.lagEvents, m.lagSeconds, m.applied, m.dead, m.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the status of every target, read
// at most once per CacheFor.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := m.Status(ctx)
	if err != nil {
		m.cfg.Logger.Warn("projection status for metrics", "err", err)
		for _, t := range m.targets {
			ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, 0, t.Name)
		}
		return
	}
	for _, s := range st {
		up := 1.0
		if s.Error != "" {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up, s.Projection)
		ch <- prometheus.MustNewConstMetric(m.lagEvents, prometheus.GaugeValue, float64(s.LagEvents), s.Projection)
		ch <- prometheus.MustNewConstMetric(m.lagSeconds, prometheus.GaugeValue, s.LagSeconds, s.Projection)
		ch <- prometheus.MustNewConstMetric(m.applied, prometheus.GaugeValue, float64(s.Applied), s.Projection)
		ch <- prometheus.MustNewConstMetric(m.dead, prometheus.GaugeValue, float64(s.DeadLetters), s.Projection)
	}
}
