package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/eventstore"
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Topic is the log's topic. Default DefaultTopic.
	Topic string
	// Group is the Kafka consumer group. Default: the projection's name
	// (see readmodels.NameOrders: never rename it).
	Group string
	// MaxBatch is the most records applied in one transaction. Default 4096.
	// Big batches are what make a projection fast (one statement per table
	// per batch, one row write per aggregate per batch); a batch is only as
	// big as what is waiting, so a live projection still applies a lone
	// event at once.
	MaxBatch int
	// Workers is how many transactions run at once. Each owns the partitions
	// p with p % Workers == its index, so per-partition order holds. Default
	// 1. Size it to the database it writes to (seed 000: the everyday order
	// service's worker pool).
	Workers int
	// Gather is how long the broker may hold a fetch to gather GatherBytes
	// of records before it answers (Kafka's fetch.max.wait.ms with
	// fetch.min.bytes): under load a transaction and a fetch then carry
	// dozens of events instead of a few, and every fetch, record batch
	// read and transaction costs the same whatever it carries; an event
	// that comes alone waits at most Gather. Default 50ms and 64 KiB;
	// GatherBytes -1: answer as soon as anything is there.
	Gather      time.Duration
	GatherBytes int32
	// Rate caps the events applied per second (0: no cap). The daily
	// projection uses it to pull from the log at the pace the everyday order
	// database can take; Kafka holds the rest.
	Rate float64
	// RetryMin and RetryMax bound the exponential backoff between attempts to
	// apply a batch while Postgres fails. Defaults 100ms and 10s.
	RetryMin, RetryMax time.Duration
	// StopTimeout is how long a graceful stop may spend committing the
	// batches in hand after Run's context is done. Default 15s.
	StopTimeout time.Duration
	// CheckpointTable and DeadLetterTable: see ApplierConfig.
	CheckpointTable, DeadLetterTable string
	// DeadLetterTopic receives every dead letter (the original record, with
	// the reason in headers) after it is committed to DeadLetterTable.
	// Default Topic + ".dlq"; "-" turns the topic off (the table remains).
	// The topic must exist (seckill serve creates it).
	DeadLetterTopic string
	// Metrics, if set, receives the Consumer's counters and histograms.
	Metrics *Metrics
	// Observe, if set, is called after every commit with the events applied.
	Observe func([]Event)
	// Logger is the Consumer's log. Default slog.Default().
	Logger *slog.Logger
}

func (c *ConsumerConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 4096
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.Gather == 0 {
		c.Gather = 50 * time.Millisecond
	}
	if c.GatherBytes == 0 {
		c.GatherBytes = 64 << 10
	}
	if c.RetryMin == 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 15 * time.Second
	}
	if c.CheckpointTable == "" {
		c.CheckpointTable = DefaultCheckpointTable
	}
	if c.DeadLetterTable == "" {
		c.DeadLetterTable = DefaultDeadLetterTable
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topic + ".dlq"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every invalid field, joined.
func (c ConsumerConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("empty topic"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("max batch %d < 1", c.MaxBatch))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers %d < 1", c.Workers))
	}
	if c.Gather < 10*time.Millisecond {
		// kgo's floor for fetch.max.wait.
		errs = append(errs, fmt.Errorf("gather %v < 10ms", c.Gather))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate %g < 0", c.Rate))
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("retry backoff %s..%s: want 0 < min <= max", c.RetryMin, c.RetryMax))
	}
	if c.StopTimeout <= 0 {
		errs = append(errs, fmt.Errorf("stop timeout %s <= 0", c.StopTimeout))
	}
	errs = append(errs, ApplierConfig{CheckpointTable: c.CheckpointTable, DeadLetterTable: c.DeadLetterTable}.Validate())
	return errors.Join(errs...)
}

// State is what a Consumer is doing.
type State string

// Consumer states.
const (
	StateIdle     State = "idle"     // Run not called yet, or returned
	StateRunning  State = "running"  // consuming and applying
	StateRetrying State = "retrying" // the last attempt to apply failed; backing off
	StateStopping State = "stopping" // context done; committing the batch in hand
)

// RunnerStatus is a snapshot of the Consumer that runs a projection live, for
// health and admin endpoints.
type RunnerStatus struct {
	Projection string `json:"projection"`
	State      State  `json:"state"`
	// Events, Skipped and DeadLetters add up ApplyResult over every batch
	// committed since the Consumer was made.
	Events      int64 `json:"events"`
	Skipped     int64 `json:"skipped"`
	DeadLetters int64 `json:"dead_letters"`
	Batches     int64 `json:"batches"`
	// LastCommit is when the last batch committed.
	LastCommit time.Time `json:"last_commit,omitzero"`
	// LastError is the last failure to apply a batch, cleared by the next commit.
	LastError string `json:"last_error,omitempty"`
	// Offsets is the last offset this Consumer committed per partition; the
	// authoritative positions are in the checkpoint table (Consumer.Positions).
	Offsets map[int32]int64 `json:"offsets,omitempty"`
}

// Consumer runs a projection live: it consumes the log in the projection's
// Kafka consumer group with franz-go and applies what it fetched through an
// Applier, in big batches.
//
// Positions are authoritative in Postgres, not in Kafka: when the group
// assigns partitions to it, the Consumer seeks each to the position in the
// checkpoint table (+1), so what Kafka has committed does not matter for
// correctness (it still commits there, after Postgres, for the tools that
// show group lag). That is what lets it fetch thousands of records ahead
// while a batch is applied, where watermill-kafka holds one message per
// partition until it is acked (see docs/projections.md). Rebalances wait
// until the batches in hand are committed (kgo.BlockRebalanceOnPoll); even if
// a member is thrown out meanwhile, the checkpoint rows serialize two members
// applying one partition, and the later one skips what the earlier one
// committed.
type Consumer struct {
	cfg     ConsumerConfig
	applier *Applier
	pool    *pgxpool.Pool
	log     *slog.Logger
	dlq     *deadLetterPublisher
	pace    *pacer
	running atomic.Bool

	mu     sync.Mutex
	status RunnerStatus
}

// NewConsumer returns a Consumer of p writing through pool.
func NewConsumer(cfg ConsumerConfig, pool *pgxpool.Pool, p Projection) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new consumer: %w", err)
	}
	c := &Consumer{cfg: cfg, pool: pool, pace: newPacer(cfg.Rate)}
	a, err := NewApplier(ApplierConfig{
		CheckpointTable: cfg.CheckpointTable,
		DeadLetterTable: cfg.DeadLetterTable,
		Logger:          cfg.Logger,
		Observe:         c.observe,
	}, pool, p)
	if err != nil {
		return nil, fmt.Errorf("new consumer: %w", err)
	}
	c.applier = a
	if cfg.Group == "" {
		c.cfg.Group = p.Name()
	}
	c.log = cfg.Logger.With("projection", p.Name())
	c.status = RunnerStatus{Projection: p.Name(), State: StateIdle, Offsets: map[int32]int64{}}
	if cfg.DeadLetterTopic != "-" {
		c.dlq = &deadLetterPublisher{
			brokers: cfg.Brokers, topic: cfg.DeadLetterTopic, projection: p.Name(),
			pool: pool, table: cfg.DeadLetterTable, log: c.log, nudge: make(chan struct{}, 1),
		}
	}
	return c, nil
}

// Name is the projection's name.
func (c *Consumer) Name() string { return c.applier.proj.Name() }

// Pool is the database the projection writes to (its positions are there).
func (c *Consumer) Pool() *pgxpool.Pool { return c.pool }

// CheckpointTable is where the projection's positions are.
func (c *Consumer) CheckpointTable() string { return c.cfg.CheckpointTable }

// DeadLetterTable is where the projection's dead letters are.
func (c *Consumer) DeadLetterTable() string { return c.cfg.DeadLetterTable }

// Run consumes and applies until ctx is done, then finishes the batches in
// hand (commit, within StopTimeout) and returns nil. Records fetched but not
// applied are simply fetched again by the next run: the positions in
// Postgres say where to start. It returns an error if the Kafka client
// cannot be made, or if the final batches cannot be committed. A Consumer
// runs once at a time; Run may be called again after it returns.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return fmt.Errorf("projection %s: already running", c.Name())
	}
	defer c.running.Store(false)
	defer c.setState(StateIdle)

	cl, err := eventstore.NewGroupClient(c.cfg.Brokers, c.cfg.Group, c.cfg.Topic,
		// Only for partitions without a position in Postgres (see seek).
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(c.seek),
		kgo.BlockRebalanceOnPoll(),
		// Kafka's copy of the positions is advisory (for group-lag tools);
		// it is marked only after the Postgres commit.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.FetchMaxWait(c.cfg.Gather),
		kgo.FetchMinBytes(max(c.cfg.GatherBytes, 1)),
		kgo.RebalanceTimeout(time.Minute),
	)
	if err != nil {
		return fmt.Errorf("projection %s: kafka client: %w", c.Name(), err)
	}
	defer cl.Close()

	dlqCtx, stopDLQ := context.WithCancel(context.WithoutCancel(ctx))
	var dlqDone chan struct{}
	if c.dlq != nil {
		dlqDone = make(chan struct{})
		go func() { defer close(dlqDone); c.dlq.run(dlqCtx) }()
	}
	defer func() {
		stopDLQ()
		if dlqDone != nil {
			<-dlqDone
		}
	}()

	c.setState(StateRunning)
	c.log.InfoContext(ctx, "projection running", "topic", c.cfg.Topic, "group", c.cfg.Group,
		"max_batch", c.cfg.MaxBatch, "workers", c.cfg.Workers, "rate", c.cfg.Rate)
	for {
		fetches := cl.PollRecords(ctx, c.cfg.MaxBatch*c.cfg.Workers)
		if ctx.Err() != nil {
			// Records polled now are not in hand: the next run fetches them
			// again from the positions in Postgres.
			cl.AllowRebalance()
			c.log.Info("projection stopped")
			return nil
		}
		if fetches.IsClientClosed() {
			return fmt.Errorf("projection %s: kafka client closed", c.Name())
		}
		fetches.EachError(func(t string, p int32, err error) {
			c.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		recs := fetches.Records()
		if len(recs) > 0 {
			if err := c.applyAll(ctx, recs); err != nil {
				cl.AllowRebalance()
				return err
			}
			if ctx.Err() != nil {
				// Stopped between batches: some records were not applied,
				// so Kafka's advisory offsets are left where they are.
				cl.AllowRebalance()
				c.log.Info("projection stopped")
				return nil
			}
			cl.MarkCommitRecords(recs...)
		}
		cl.AllowRebalance()
	}
}

// seek moves every newly assigned partition to its position in Postgres, or
// to the start of the log if it has none. It retries while Postgres is
// unreachable: consuming from Kafka's committed offsets instead could skip
// or repeat records that Postgres disagrees about.
func (c *Consumer) seek(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	backoff := c.cfg.RetryMin
	for {
		pos, err := ReadPositions(ctx, c.pool, c.cfg.CheckpointTable, c.Name())
		if err == nil {
			at := map[partKey]int64{}
			for _, p := range pos {
				at[partKey{p.Topic, p.Partition}] = p.Offset
			}
			for topic, parts := range offsets {
				for p := range parts {
					if o, ok := at[partKey{topic, p}]; ok {
						parts[p] = kgo.NewOffset().At(o + 1)
					} else {
						parts[p] = kgo.NewOffset().AtStart()
					}
				}
			}
			return offsets, nil
		}
		c.failed(err)
		c.log.Warn("read positions failed; retrying", "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.cfg.RetryMax)
	}
}

// applyAll applies recs: each worker takes its partitions' records, in
// batches of at most MaxBatch, at the configured rate.
func (c *Consumer) applyAll(ctx context.Context, recs []*kgo.Record) error {
	shards := make([][]eventstore.Record, c.cfg.Workers)
	for _, r := range recs {
		w := int(r.Partition) % c.cfg.Workers
		shards[w] = append(shards[w], eventstore.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, shard := range shards {
		if len(shard) == 0 {
			continue
		}
		wg.Go(func() {
			for len(shard) > 0 && ctx.Err() == nil {
				n := min(len(shard), c.cfg.MaxBatch)
				if err := c.pace.wait(ctx, n); err != nil {
					return // stopping: the rest is fetched again next run
				}
				if err := c.commit(ctx, shard[:n]); err != nil {
					errs[i] = err
					return
				}
				shard = shard[n:]
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// commit applies recs until they commit. While ctx is live it retries
// forever with backoff: a projection that skipped a batch would be wrong for
// good, one that waits is only late. Once ctx is done the batch in hand is
// still finished, within StopTimeout.
func (c *Consumer) commit(ctx context.Context, recs []eventstore.Record) error {
	applyCtx, cancelApply := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelApply()
	var stopTimer atomic.Pointer[time.Timer]
	defer func() {
		if t := stopTimer.Load(); t != nil {
			t.Stop()
		}
	}()
	defer context.AfterFunc(ctx, func() {
		c.setState(StateStopping)
		stopTimer.Store(time.AfterFunc(c.cfg.StopTimeout, cancelApply))
	})()

	backoff := c.cfg.RetryMin
	for {
		start := time.Now()
		res, err := c.applier.Apply(applyCtx, recs)
		if err == nil {
			c.committed(recs, res, time.Since(start))
			return nil
		}
		c.failed(err)
		c.cfg.Metrics.retried(c.Name())
		if applyCtx.Err() != nil {
			return fmt.Errorf("projection %s: stopped before the batch in hand committed: %w", c.Name(), err)
		}
		c.log.Warn("apply batch failed; retrying", "records", len(recs), "backoff", backoff, "err", err)
		wait := time.NewTimer(backoff)
		select {
		case <-wait.C:
		case <-applyCtx.Done():
			wait.Stop()
		}
		backoff = min(2*backoff, c.cfg.RetryMax)
	}
}

func (c *Consumer) observe(events []Event) {
	c.cfg.Metrics.observeLag(c.Name(), events, time.Now())
	if c.cfg.Observe != nil {
		c.cfg.Observe(events)
	}
}

func (c *Consumer) setState(s State) {
	c.mu.Lock()
	c.status.State = s
	c.mu.Unlock()
}

func (c *Consumer) committed(recs []eventstore.Record, res ApplyResult, took time.Duration) {
	c.cfg.Metrics.committed(c.Name(), res, took)
	if res.DeadLettered > 0 && c.dlq != nil {
		c.dlq.poke()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.Events += int64(res.Applied)
	c.status.Skipped += int64(res.Skipped)
	c.status.DeadLetters += int64(res.DeadLettered)
	c.status.Batches++
	c.status.LastCommit = time.Now()
	c.status.LastError = ""
	if c.status.State == StateRetrying {
		c.status.State = StateRunning
	}
	for _, r := range recs {
		if cur, ok := c.status.Offsets[r.Partition]; !ok || r.Offset > cur {
			c.status.Offsets[r.Partition] = r.Offset
		}
	}
}

func (c *Consumer) failed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.LastError = err.Error()
	if c.status.State == StateRunning {
		c.status.State = StateRetrying
	}
}

// Status returns a snapshot of the Consumer.
func (c *Consumer) Status() RunnerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Offsets = make(map[int32]int64, len(c.status.Offsets))
	for k, v := range c.status.Offsets {
		s.Offsets[k] = v
	}
	return s
}

// Positions reads the projection's committed positions from Postgres.
func (c *Consumer) Positions(ctx context.Context) ([]Position, error) {
	return ReadPositions(ctx, c.pool, c.cfg.CheckpointTable, c.Name())
}

// pacer spaces batches so that on average at most rate events per second
// start: each batch is scheduled n/rate after the one before. A nil pacer
// (no rate) never waits.
type pacer struct {
	mu   sync.Mutex
	rate float64
	next time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{rate: rate}
}

// wait blocks until a batch of n events may start, or ctx is done.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p == nil {
		return ctx.Err()
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
