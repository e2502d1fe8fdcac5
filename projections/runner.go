package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SubscriberFactory makes the subscriber of one consumer group, for example
//
//	func(group string) (message.Subscriber, error) {
//		return eventstore.NewSubscriber(brokers, group, logger)
//	}
//
// The subscriber must be watermill-kafka's (the Runner reads each message's
// partition and offset from its context) and a new group must start at the
// oldest offset.
type SubscriberFactory func(consumerGroup string) (message.Subscriber, error)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// Topic is the log's Kafka topic. Default DefaultTopic.
	Topic string
	// MaxBatch is the most messages applied in one transaction. The
	// subscriber hands out one message per partition until it is acked, so a
	// batch holds at most one message per partition owned. Default 1024.
	MaxBatch int
	// MaxWait is the longest a batch waits for more messages after its first
	// one. Default 20ms.
	MaxWait time.Duration
	// Linger is how long a batch waits for the next message before it is
	// applied: partitions that are busy deliver their next message within
	// microseconds of the previous ack, so a gap means the rest are idle.
	// It bounds the latency added to a lone event. Default 2ms.
	Linger time.Duration
	// RetryMin and RetryMax bound the exponential backoff between attempts to
	// apply a batch while Postgres fails. Defaults 100ms and 10s.
	RetryMin, RetryMax time.Duration
	// StopTimeout is how long a graceful stop may spend committing the batch
	// in hand after Run's context is done. Default 15s.
	StopTimeout time.Duration
	// CheckpointTable and DeadLetterTable: see ApplierConfig.
	CheckpointTable, DeadLetterTable string
	// Logger is the runner's log. Default slog.Default().
	Logger *slog.Logger
}

func (c *RunnerConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1024
	}
	if c.MaxWait == 0 {
		c.MaxWait = 20 * time.Millisecond
	}
	if c.Linger == 0 {
		c.Linger = 2 * time.Millisecond
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every invalid field, joined.
func (c RunnerConfig) Validate() error {
	var errs []error
	if c.Topic == "" {
		errs = append(errs, errors.New("empty topic"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("max batch %d < 1", c.MaxBatch))
	}
	if c.MaxWait < 0 || c.Linger < 0 {
		errs = append(errs, fmt.Errorf("negative max wait %s or linger %s", c.MaxWait, c.Linger))
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

// State is what a Runner is doing.
type State string

// Runner states.
const (
	StateIdle     State = "idle"     // Run not called yet, or returned
	StateRunning  State = "running"  // consuming and applying
	StateRetrying State = "retrying" // the last attempt to apply failed; backing off
	StateStopping State = "stopping" // context done; committing the batch in hand
)

// RunnerStatus is a snapshot of a Runner, for health and admin endpoints.
type RunnerStatus struct {
	Projection string `json:"projection"`
	State      State  `json:"state"`
	// Events, Skipped and DeadLetters add up ApplyResult over every batch
	// committed since the Runner was made.
	Events      int64 `json:"events"`
	Skipped     int64 `json:"skipped"`
	DeadLetters int64 `json:"dead_letters"`
	Batches     int64 `json:"batches"`
	// LastCommit is when the last batch committed.
	LastCommit time.Time `json:"last_commit,omitzero"`
	// LastError is the last failure to apply a batch, cleared by the next commit.
	LastError string `json:"last_error,omitempty"`
	// Offsets is the last offset this Runner committed per partition; the
	// authoritative positions are in the checkpoint table (Runner.Positions).
	Offsets map[int32]int64 `json:"offsets,omitempty"`
}

// Runner consumes the log in the projection's consumer group and applies it
// through an Applier, batching across partitions: it gathers messages as they
// arrive (up to MaxBatch or MaxWait), applies them in one transaction with the
// checkpoints, and only after the commit acks them, so the group's offset in
// Kafka never runs ahead of Postgres. A failing transaction is retried with
// backoff, holding the messages: nothing is skipped and per-partition order
// is kept.
type Runner struct {
	cfg       RunnerConfig
	applier   *Applier
	subscribe SubscriberFactory
	pool      *pgxpool.Pool
	log       *slog.Logger
	running   atomic.Bool

	mu     sync.Mutex
	status RunnerStatus
}

// NewRunner returns a Runner of p. subscribe is called by Run with p.Name()
// as the consumer group.
func NewRunner(cfg RunnerConfig, pool *pgxpool.Pool, subscribe SubscriberFactory, p Projection) (*Runner, error) {
	cfg.setDefaults()
	errs := []error{cfg.Validate()}
	if subscribe == nil {
		errs = append(errs, errors.New("nil subscriber factory"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	a, err := NewApplier(ApplierConfig{
		CheckpointTable: cfg.CheckpointTable,
		DeadLetterTable: cfg.DeadLetterTable,
		Logger:          cfg.Logger,
	}, pool, p)
	if err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	return &Runner{
		cfg:       cfg,
		applier:   a,
		subscribe: subscribe,
		pool:      pool,
		log:       cfg.Logger.With("projection", p.Name()),
		status:    RunnerStatus{Projection: p.Name(), State: StateIdle, Offsets: map[int32]int64{}},
	}, nil
}

// Name is the projection's name.
func (r *Runner) Name() string { return r.applier.proj.Name() }

// Run consumes and applies until ctx is done, then finishes the batch in hand
// (commit and ack, within StopTimeout) and returns nil. It returns an error if
// the subscriber cannot be made or stops on its own, or if the final batch
// cannot be committed (its messages stay unacked and are redelivered to the
// next run). A Runner runs once at a time; Run may be called again after it
// returns.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("projection %s: already running", r.Name())
	}
	defer r.running.Store(false)
	defer r.setState(StateIdle)

	sub, err := r.subscribe(r.Name())
	if err != nil {
		return fmt.Errorf("projection %s: subscriber: %w", r.Name(), err)
	}
	// The subscription outlives ctx on purpose: after ctx is done the batch in
	// hand is still committed and acked, and acks only reach Kafka while the
	// subscription is alive. It ends when Run returns.
	subCtx, cancelSub := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		cancelSub()
		if cerr := sub.Close(); cerr != nil {
			r.log.Warn("close subscriber", "err", cerr)
		}
	}()
	msgs, err := sub.Subscribe(subCtx, r.cfg.Topic)
	if err != nil {
		return fmt.Errorf("projection %s: subscribe %s: %w", r.Name(), r.cfg.Topic, err)
	}
	r.setState(StateRunning)
	r.log.InfoContext(ctx, "projection running", "topic", r.cfg.Topic)

	var expect map[int32]bool
	for {
		batch, open := r.gather(ctx, msgs, expect)
		if len(batch) > 0 {
			if err := r.commit(ctx, batch); err != nil {
				return err
			}
			expect = make(map[int32]bool, len(batch))
			for _, m := range batch {
				expect[m.rec.Partition] = true
			}
		}
		if ctx.Err() != nil {
			r.log.Info("projection stopped")
			return nil
		}
		if !open {
			return fmt.Errorf("projection %s: subscription closed", r.Name())
		}
	}
}

type pending struct {
	msg *message.Message
	rec Record
}

// gather collects a batch: it waits for a first message, then takes what
// arrives until MaxBatch, MaxWait, a gap of Linger, or until every partition
// of the previous batch has delivered again: each partition has at most one
// message in flight, so once all the partitions that were busy last time are
// in, more waiting only adds latency. open is false when the subscription has
// ended.
func (r *Runner) gather(ctx context.Context, msgs <-chan *message.Message, expect map[int32]bool) (batch []pending, open bool) {
	select {
	case <-ctx.Done():
		return nil, true
	case m, ok := <-msgs:
		if !ok {
			return nil, false
		}
		batch = append(batch, r.pending(m))
	}
	missing := len(expect)
	if expect[batch[0].rec.Partition] {
		missing--
	}
	maxWait := time.NewTimer(r.cfg.MaxWait)
	defer maxWait.Stop()
	linger := time.NewTimer(r.cfg.Linger)
	defer linger.Stop()
	for len(batch) < r.cfg.MaxBatch && (len(expect) == 0 || missing > 0) {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch, false
			}
			p := r.pending(m)
			batch = append(batch, p)
			if expect[p.rec.Partition] {
				missing--
			}
			linger.Reset(r.cfg.Linger)
		case <-linger.C:
			return batch, true
		case <-maxWait.C:
			return batch, true
		case <-ctx.Done():
			return batch, true
		}
	}
	return batch, true
}

func (r *Runner) pending(m *message.Message) pending {
	p := pending{msg: m, rec: Record{Topic: r.cfg.Topic, Partition: -1, Offset: -1, Value: m.Payload}}
	mctx := m.Context()
	if part, ok := kafka.MessagePartitionFromCtx(mctx); ok {
		p.rec.Partition = part
	}
	if off, ok := kafka.MessagePartitionOffsetFromCtx(mctx); ok {
		p.rec.Offset = off
	}
	if key, ok := kafka.MessageKeyFromCtx(mctx); ok {
		p.rec.Key = key
	}
	return p
}

// commit applies batch until it commits, then acks it. While ctx is live it
// retries forever with backoff: a projection that skipped a batch would be
// wrong for good, one that waits is only late. Once ctx is done the batch in
// hand is still finished (a stop must not waste the work of a transaction
// under way), but within StopTimeout; after that commit gives up and leaves
// the messages unacked, to be redelivered to the next run.
func (r *Runner) commit(ctx context.Context, batch []pending) error {
	recs := make([]Record, len(batch))
	for i, p := range batch {
		if p.rec.Partition < 0 || p.rec.Offset < 0 {
			return fmt.Errorf("projection %s: message %s has no Kafka partition/offset in its context; the subscriber must be watermill-kafka's", r.Name(), p.msg.UUID)
		}
		recs[i] = p.rec
	}
	applyCtx, cancelApply := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelApply()
	var stopTimer atomic.Pointer[time.Timer]
	defer func() {
		if t := stopTimer.Load(); t != nil {
			t.Stop()
		}
	}()
	defer context.AfterFunc(ctx, func() {
		r.setState(StateStopping)
		stopTimer.Store(time.AfterFunc(r.cfg.StopTimeout, cancelApply))
	})()

	backoff := r.cfg.RetryMin
	for {
		res, err := r.applier.Apply(applyCtx, recs)
		if err == nil {
			// Ack only now: the rows and the checkpoints are durable, so the
			// group offset may move past these messages.
			for _, p := range batch {
				p.msg.Ack()
			}
			r.committed(batch, res)
			return nil
		}
		r.failed(err)
		if applyCtx.Err() != nil {
			return fmt.Errorf("projection %s: stopped before the batch in hand committed: %w", r.Name(), err)
		}
		r.log.Warn("apply batch failed; retrying", "records", len(recs), "backoff", backoff, "err", err)
		wait := time.NewTimer(backoff)
		select {
		case <-wait.C:
		case <-applyCtx.Done():
			wait.Stop()
		}
		backoff = min(2*backoff, r.cfg.RetryMax)
	}
}

func (r *Runner) setState(s State) {
	r.mu.Lock()
	r.status.State = s
	r.mu.Unlock()
}

func (r *Runner) committed(batch []pending, res ApplyResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Events += int64(res.Applied)
	r.status.Skipped += int64(res.Skipped)
	r.status.DeadLetters += int64(res.DeadLettered)
	r.status.Batches++
	r.status.LastCommit = time.Now()
	r.status.LastError = ""
	if r.status.State == StateRetrying {
		r.status.State = StateRunning
	}
	for _, p := range batch {
		if cur, ok := r.status.Offsets[p.rec.Partition]; !ok || p.rec.Offset > cur {
			r.status.Offsets[p.rec.Partition] = p.rec.Offset
		}
	}
}

func (r *Runner) failed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.LastError = err.Error()
	if r.status.State == StateRunning {
		r.status.State = StateRetrying
	}
}

// Status returns a snapshot of the Runner.
func (r *Runner) Status() RunnerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.Offsets = make(map[int32]int64, len(r.status.Offsets))
	for k, v := range r.status.Offsets {
		s.Offsets[k] = v
	}
	return s
}

// Positions reads the projection's committed positions from Postgres.
func (r *Runner) Positions(ctx context.Context) ([]Position, error) {
	return ReadPositions(ctx, r.pool, r.cfg.CheckpointTable, r.Name())
}
