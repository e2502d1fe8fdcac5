package projections_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

// startConsumer runs a Consumer of p until the test ends or stop is called.
func startConsumer(t testing.TB, cfg projections.ConsumerConfig, pool *pgxpool.Pool, brokers []string, p projections.Projection) (c *projections.Consumer, stop func() error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	cfg.Brokers = brokers
	if cfg.RetryMax == 0 {
		cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 500*time.Millisecond
	}
	c, err := projections.NewConsumer(cfg, pool, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("consumer %s did not stop", p.Name())
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return c, stop
}

// waitAll waits until every projection of names has applied the whole log.
func waitAll(t testing.TB, pool *pgxpool.Pool, brokers []string, timeout time.Duration, names ...string) {
	t.Helper()
	for _, n := range readmodelstest.Names {
		waitCaughtUp(t, pool, brokers, n, timeout)
	}
}

// referenceAll applies envs once, in one batch per projection, into a fresh
// database: the read models of a flawless single pass.
func referenceAll(t testing.TB, envs [][]byte, partitions int) string {
	t.Helper()
	pool := readmodelstest.NewPool(t)
	st := &readmodelstest.Stream{Envs: envs}
	for _, b := range envs {
		env, err := eventstore.ToMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		st.Keys = append(st.Keys, env.Metadata.Get(eventstore.MetadataAggregateID))
	}
	for _, p := range readmodelstest.All(t, pool) {
		if _, err := readmodelstest.NewApplier(t, pool, p).Apply(context.Background(), st.Records(projections.DefaultTopic, partitions)); err != nil {
			t.Fatal(err)
		}
	}
	return readmodelstest.SnapshotAll(t, pool)
}

func ensureDLQ(t testing.TB, brokers []string) {
	t.Helper()
	if err := eventstore.EnsureTopic(context.Background(), brokers, projections.DefaultTopic+".dlq", 1); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerMatchesFold(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 8)
	ensureDLQ(t, brokers)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.GenTicks(t, 51, 4, 100, 20*time.Second)
	publish(t, brokers, st.Envs)

	var consumers []*projections.Consumer
	for _, p := range readmodelstest.All(t, pool) {
		c, _ := startConsumer(t, projections.ConsumerConfig{}, pool, brokers, p)
		consumers = append(consumers, c)
	}
	waitAll(t, pool, brokers, time.Minute, readmodelstest.Names...)
	readmodelstest.AssertAllMatchFold(t, pool, st.Envs)
	if got, want := readmodelstest.SnapshotAll(t, pool), referenceAll(t, st.Envs, 8); got != want {
		t.Fatalf("consumers' read models differ from a direct apply:\ngot  %.2000s\nwant %.2000s", got, want)
	}
	for _, c := range consumers {
		if s := c.Status(); s.Events != int64(len(st.Envs)) || s.DeadLetters != 0 || s.LastError != "" {
			t.Errorf("%s: status %+v, want %d events", c.Name(), s, len(st.Envs))
		}
		t.Logf("%s: %d events in %d batches", c.Name(), c.Status().Events, c.Status().Batches)
	}
}

// TestConsumerTwiceAndRebalance delivers every event twice (the whole log is
// published again, so each event sits at two offsets) and moves partitions
// between consumers of one group while they apply: the read models must be
// identical to one clean pass.
func TestConsumerTwiceAndRebalance(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 8)
	ensureDLQ(t, brokers)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.GenTicks(t, 52, 4, 100, 20*time.Second)
	publish(t, brokers, st.Envs)
	publish(t, brokers, st.Dup(53).Envs) // every event again, some three times

	// Small batches and a slow apply (30ms a batch, so the first members
	// cannot finish the log before the second ones join, even on a quiet
	// machine), so that the rebalances happen while batches are in flight.
	cfg := projections.ConsumerConfig{MaxBatch: 16}
	var firsts []func() error
	var seconds []*projections.Consumer
	for _, p := range readmodelstest.All(t, pool) {
		_, stop := startConsumer(t, cfg, pool, brokers, slow{p, 30 * time.Millisecond})
		firsts = append(firsts, stop)
	}
	time.Sleep(500 * time.Millisecond)
	// A second member joins each group: the partitions are split.
	for _, p := range readmodelstest.All(t, pool) {
		c, _ := startConsumer(t, cfg, pool, brokers, slow{p, 30 * time.Millisecond})
		seconds = append(seconds, c)
	}
	time.Sleep(1500 * time.Millisecond)
	// The first members leave: the second ones take everything over.
	for _, stop := range firsts {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	waitAll(t, pool, brokers, 2*time.Minute, readmodelstest.Names...)
	for _, c := range seconds {
		if c.Status().Events == 0 {
			t.Errorf("%s: the second member applied nothing: no rebalance happened", c.Name())
		}
	}
	readmodelstest.AssertAllMatchFold(t, pool, st.Envs)
	if got, want := readmodelstest.SnapshotAll(t, pool), referenceAll(t, st.Envs, 8); got != want {
		t.Fatalf("duplicates and rebalances changed the read models:\ngot  %.2000s\nwant %.2000s", got, want)
	}
}

// TestConsumerRestartMidBatch abandons a batch inside its transaction (as a
// crash does: the transaction rolls back, nothing is acked), then starts a
// new consumer: it continues from the positions in Postgres.
func TestConsumerRestartMidBatch(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 4)
	ensureDLQ(t, brokers)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.GenTicks(t, 54, 3, 80, 20*time.Second)
	publish(t, brokers, st.Envs[:len(st.Envs)/2])

	// First run: a few batches commit, then one hangs inside Apply and the
	// stop gives up on it.
	for _, p := range readmodelstest.All(t, pool) {
		var n atomic.Int32
		h := holdAfter{Projection: p, n: &n, after: 3, entered: make(chan struct{})}
		_, stop := startConsumer(t, projections.ConsumerConfig{MaxBatch: 20, StopTimeout: 100 * time.Millisecond}, pool, brokers, h)
		select {
		case <-h.entered:
		case <-time.After(time.Minute):
			t.Fatal("no batch reached Apply")
		}
		if err := stop(); err == nil {
			t.Fatalf("%s: Run returned nil with a batch abandoned", p.Name())
		}
	}
	pos, err := projections.ReadPositions(context.Background(), pool, "", readmodels.NameOrders)
	if err != nil || len(pos) == 0 {
		t.Fatalf("first run committed nothing (positions %v, err %v)", pos, err)
	}
	publish(t, brokers, st.Envs[len(st.Envs)/2:])
	for _, p := range readmodelstest.All(t, pool) {
		startConsumer(t, projections.ConsumerConfig{}, pool, brokers, p)
	}
	waitAll(t, pool, brokers, time.Minute, readmodelstest.Names...)
	readmodelstest.AssertAllMatchFold(t, pool, st.Envs)
	if got, want := readmodelstest.SnapshotAll(t, pool), referenceAll(t, st.Envs, 4); got != want {
		t.Fatalf("after a restart mid-batch the read models differ:\ngot  %.2000s\nwant %.2000s", got, want)
	}
}

// holdAfter lets `after` batches through, then blocks every Apply until its
// context ends (entered is closed when the first one blocks).
type holdAfter struct {
	projections.Projection
	n       *atomic.Int32
	after   int32
	entered chan struct{}
}

func (h holdAfter) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	if h.n.Add(1) <= h.after {
		return h.Projection.Apply(ctx, tx, batch)
	}
	select {
	case <-h.entered:
	default:
		close(h.entered)
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestConsumerPostgresRestart kills Postgres while the consumers apply and
// events keep coming, then starts it again: nothing is skipped.
func TestConsumerPostgresRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	brokers := kafkaBrokers(t, 4)
	ensureDLQ(t, brokers)
	srv := testenv.PostgresServer(t)
	if err := srv.CreateDatabase(ctx, "restart"); err != nil {
		t.Fatal(err)
	}
	dsn := srv.DSN("restart")
	if err := migrations.Up(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := readmodelstest.GenTicks(t, 55, 3, 100, 20*time.Second)
	third := len(st.Envs) / 3
	publish(t, brokers, st.Envs[:third])
	quiet := slog.New(slog.DiscardHandler) // the retries warn on purpose
	var consumers []*projections.Consumer
	for _, p := range readmodelstest.All(t, pool) {
		c, _ := startConsumer(t, projections.ConsumerConfig{MaxBatch: 50, Logger: quiet}, pool, brokers, slow{p, 2 * time.Millisecond})
		consumers = append(consumers, c)
	}
	deadline := time.Now().Add(time.Minute)
	for consumers[0].Status().Events == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	publish(t, brokers, st.Envs[third:2*third])
	for _, c := range consumers {
		for c.Status().State != projections.StateRetrying && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if s := c.Status(); s.State != projections.StateRetrying || s.LastError == "" {
			t.Errorf("%s with Postgres down: status %+v, want retrying", c.Name(), s)
		}
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	publish(t, brokers, st.Envs[2*third:])
	waitAll(t, pool, brokers, 2*time.Minute, readmodelstest.Names...)
	readmodelstest.AssertAllMatchFold(t, pool, st.Envs)
	for _, c := range consumers {
		if s := c.Status(); s.State != projections.StateRunning || s.LastError != "" {
			t.Errorf("%s after the restart: %+v", c.Name(), s)
		}
	}
}

// TestConsumerPoisonInTheMiddle puts a record that is not an envelope (and
// without watermill's header) and an event of an unknown type in the middle
// of a single partition: both are dead-lettered, in the table and on the
// dead-letter topic, and everything after them is applied.
func TestConsumerPoisonInTheMiddle(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 1)
	ensureDLQ(t, brokers)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.GenTicks(t, 56, 2, 40, 20*time.Second)
	mid := len(st.Envs) / 2
	publish(t, brokers, st.Envs[:mid])
	produceBare(t, brokers, projections.DefaultTopic, []byte("junk"), []byte("{not an envelope"))
	unknown := []byte(`{"id":"x/Teleported","type":"Teleported","version":1,"occurred_at":"2025-11-11T20:00:00Z","aggregate_id":"x","payload":{}}`)
	publish(t, brokers, [][]byte{unknown})
	publish(t, brokers, st.Envs[mid:])

	for _, p := range readmodelstest.All(t, pool) {
		startConsumer(t, projections.ConsumerConfig{}, pool, brokers, p)
	}
	waitAll(t, pool, brokers, time.Minute, readmodelstest.Names...)
	readmodelstest.AssertAllMatchFold(t, pool, st.Envs)
	for _, n := range readmodelstest.Names {
		dl, err := projections.ReadDeadLetters(context.Background(), pool, "", n, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dl) != 2 || dl[0].Offset != int64(mid) || dl[1].Offset != int64(mid+1) || dl[1].EventID != "x/Teleported" {
			t.Fatalf("%s: dead letters %+v, want offsets %d and %d", n, dl, mid, mid+1)
		}
	}
	// The dead-letter topic has each letter once per projection, with the
	// reason and source in headers.
	got := map[string]int{}
	deadline := time.Now().Add(time.Minute)
	for len(got) < 6 && time.Now().Before(deadline) {
		got = map[string]int{}
		readTopic(t, brokers, projections.DefaultTopic+".dlq", func(r *kgo.Record) {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h[projections.HeaderReason] == "" {
				t.Errorf("dead letter without a reason: %+v", h)
			}
			got[h[projections.HeaderProjection]+" "+h[projections.HeaderSource]]++
		})
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != 6 {
		t.Fatalf("dead-letter topic holds %v, want 2 letters for each of 3 projections", got)
	}
	var unpublished int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM projection_dead_letters WHERE published_at IS NULL`).Scan(&unpublished); err != nil || unpublished != 0 {
		t.Fatalf("%d dead letters not marked published (err %v)", unpublished, err)
	}
}

// produceBare writes one record with no headers at all, as a foreign tool would.
func produceBare(t testing.TB, brokers []string, topic string, key, value []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: key, Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readTopic passes every record of topic (as of now) to fn.
func readTopic(t testing.TB, brokers []string, topic string, fn func(*kgo.Record)) {
	t.Helper()
	offs, err := eventstore.ReadOffsets(context.Background(), brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	left := map[int32]int64{}
	for p, end := range offs.Ends {
		if end > offs.Starts[p] {
			left[p] = end
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(left) > 0 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			fn(r)
			if r.Offset >= left[r.Partition]-1 {
				delete(left, r.Partition)
			}
		})
	}
}

// TestConsumerPaceAndWorkers: a rate cap holds, and several workers keep
// each partition's order (the read models still equal the fold).
func TestConsumerPaceAndWorkers(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 8)
	ensureDLQ(t, brokers)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.GenTicks(t, 57, 3, 100, 20*time.Second) // ~1,000 events
	publish(t, brokers, st.Envs)
	const rate = 2000.0
	start := time.Now()
	c, _ := startConsumer(t, projections.ConsumerConfig{Rate: rate, MaxBatch: 50, Workers: 3}, pool, brokers, readmodelstest.NewDaily(t, pool))
	waitCaughtUp(t, pool, brokers, readmodels.NameDaily, time.Minute)
	took := time.Since(start)
	// The first batch of each worker starts at once; the rest are spaced.
	if min := time.Duration(float64(len(st.Envs)-3*50) / rate * float64(time.Second)); took < min {
		t.Fatalf("%d events in %s at %.0f/s: want at least %s", len(st.Envs), took, rate, min)
	}
	readmodelstest.AssertDailyMatchesFold(t, pool, st.Envs, readmodelstest.BizZone)
	t.Logf("%d events in %s (%d batches)", c.Status().Events, took, c.Status().Batches)
}

// TestMonitorReportsLag reads the status of a projection that is behind,
// then caught up.
func TestMonitorReportsLag(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 4)
	ensureDLQ(t, brokers)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 58, 2, 30)
	publish(t, brokers, st.Envs)
	time.Sleep(1100 * time.Millisecond) // so the oldest record is more than a second old
	m, err := projections.NewMonitor(projections.MonitorConfig{Brokers: brokers, CacheFor: -1, StalledAfter: time.Minute},
		projections.Target{Name: readmodels.NameOrders, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	s, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s[0].LagEvents != int64(len(st.Envs)) || s[0].LagSeconds < 1 || s[0].State != projections.StateStalled || s[0].Error != "" {
		t.Fatalf("before: %+v, want %d events behind, more than 1 s, stalled", s[0], len(st.Envs))
	}
	startConsumer(t, projections.ConsumerConfig{}, pool, brokers, readmodelstest.NewOrders(t, pool))
	waitCaughtUp(t, pool, brokers, readmodels.NameOrders, time.Minute)
	if s, err = m.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if s[0].LagEvents != 0 || s[0].LagSeconds != 0 || s[0].State != projections.StateCaughtUp || s[0].Applied != int64(len(st.Envs)) {
		t.Fatalf("after: %+v", s[0])
	}
	if !slices.ContainsFunc(s[0].Partitions, func(p projections.PartitionPosition) bool { return p.Position >= 0 }) {
		t.Fatalf("no partition positions: %+v", s[0].Partitions)
	}
}

func TestConsumerConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := projections.NewConsumer(projections.ConsumerConfig{MaxBatch: -1, Workers: -2, Rate: -1}, nil, nil)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"no brokers", "max batch", "workers", "rate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
