package projections_test

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

// testLogger shows warnings and errors only; set SECKILL_TEST_DEBUG for more.
func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("SECKILL_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func subscriberFactory(brokers []string) projections.SubscriberFactory {
	return func(group string) (message.Subscriber, error) {
		return eventstore.NewSubscriber(brokers, group, testLogger())
	}
}

// publish writes envs to the log with the eventstore publisher, as the relay does.
func publish(t testing.TB, brokers []string, envs [][]byte) {
	t.Helper()
	pub, err := eventstore.NewPublisher(brokers, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	msgs := make([]*message.Message, 0, len(envs))
	for _, b := range envs {
		m, err := eventstore.ToMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := pub.Publish(projections.DefaultTopic, msgs...); err != nil {
		t.Fatal(err)
	}
}

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// produceRaw writes records with franz-go, keyed like the publisher (sarama's
// FNV-1a hash partitioner) and with watermill's UUID header, so the
// subscriber takes them as watermill messages whatever their value is.
func produceRaw(t testing.TB, brokers []string, keys []string, ids []string, values [][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i := range values {
		recs[i] = &kgo.Record{Topic: projections.DefaultTopic, Key: []byte(keys[i]), Value: values[i],
			Headers: []kgo.RecordHeader{{Key: "_watermill_message_uuid", Value: []byte(ids[i])}}}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// startRunner runs a Runner of p until the test ends or stop is called.
func startRunner(t testing.TB, cfg projections.RunnerConfig, pool *pgxpool.Pool, brokers []string, p projections.Projection) (r *projections.Runner, stop func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	r, err := projections.NewRunner(cfg, pool, subscriberFactory(brokers), p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var stopped atomic.Bool
	stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("runner did not stop")
		}
	}
	t.Cleanup(stop)
	return r, stop
}

// waitCaughtUp waits until the projection's checkpoints reach the end of
// every partition of the log.
func waitCaughtUp(t testing.TB, pool *pgxpool.Pool, brokers []string, name string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	ends, err := eventstore.EndOffsets(ctx, brokers, projections.DefaultTopic)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		pos, err := projections.ReadPositions(ctx, pool, "", name)
		if err != nil {
			t.Fatal(err)
		}
		at := map[int32]int64{}
		for _, p := range pos {
			at[p.Partition] = p.Offset
		}
		behind := 0
		for p, end := range ends {
			if end > 0 && at[p] < end-1 {
				behind += int(end - 1 - at[p])
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projection %s still %d records behind after %s (positions %v, ends %v)", name, behind, timeout, at, ends)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reference applies envs straight through an Applier into a fresh database:
// the read model a flawless single pass gives.
func reference(t testing.TB, envs [][]byte, partitions int) string {
	t.Helper()
	pool := readmodelstest.NewPool(t)
	st := &readmodelstest.Stream{Envs: envs}
	for _, b := range envs {
		env, err := domain.DecodeEnvelope(b)
		if err != nil {
			t.Fatal(err)
		}
		st.Keys = append(st.Keys, env.AggregateID)
	}
	if _, err := readmodelstest.NewApplier(t, pool, readmodelstest.NewOrders(t, pool)).Apply(context.Background(), st.Records(projections.DefaultTopic, partitions)); err != nil {
		t.Fatal(err)
	}
	return readmodelstest.Snapshot(t, pool)
}

func TestRunnerMatchesFold(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 8)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 21, 4, 100)
	publish(t, brokers, st.Envs)

	r, stop := startRunner(t, projections.RunnerConfig{}, pool, brokers, readmodelstest.NewOrders(t, pool))
	waitCaughtUp(t, pool, brokers, readmodels.NameOrders, time.Minute)
	stop()
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
	if got, want := readmodelstest.Snapshot(t, pool), reference(t, st.Envs, 8); got != want {
		t.Fatalf("runner's read model differs from a direct apply:\ngot  %s\nwant %s", got, want)
	}
	s := r.Status()
	if s.Events != int64(len(st.Envs)) || s.DeadLetters != 0 || s.State != projections.StateIdle || s.LastError != "" {
		t.Fatalf("status %+v, want %d events", s, len(st.Envs))
	}
	t.Logf("%d events in %d batches", s.Events, s.Batches)
}

func TestRunnerPublishedTwice(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 4)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 22, 3, 60)
	// The relay is at least once: a whole stretch of the log may be
	// published again, after later events of the same orders.
	publish(t, brokers, st.Envs)
	publish(t, brokers, st.Envs[len(st.Envs)/3:])
	_, _ = startRunner(t, projections.RunnerConfig{}, pool, brokers, readmodelstest.NewOrders(t, pool))
	waitCaughtUp(t, pool, brokers, readmodels.NameOrders, time.Minute)
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
	if got, want := readmodelstest.Snapshot(t, pool), reference(t, st.Envs, 4); got != want {
		t.Fatalf("duplicates changed the read model:\ngot  %s\nwant %s", got, want)
	}
}

// slow delays every batch so that a test can stop the runner mid-stream.
type slow struct {
	projections.Projection
	d time.Duration
}

func (s slow) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	time.Sleep(s.d)
	return s.Projection.Apply(ctx, tx, batch)
}

// deleteGroup drops the consumer group's committed offsets, as if the
// runner had crashed after its Postgres commits and before any Kafka commit.
func deleteGroup(t testing.TB, brokers []string, group string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range resp.Groups {
		if g.ErrorCode != 0 {
			t.Fatalf("delete group %s: error code %d", g.Group, g.ErrorCode)
		}
	}
}

func TestRunnerRestartMidStream(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 4)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 23, 3, 80)
	publish(t, brokers, st.Envs)
	orders := readmodelstest.NewOrders(t, pool)

	// First run: stopped (gracefully) somewhere in the middle.
	r1, stop1 := startRunner(t, projections.RunnerConfig{}, pool, brokers, slow{orders, 5 * time.Millisecond})
	deadline := time.Now().Add(time.Minute)
	for r1.Status().Events < int64(len(st.Envs)/3) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop1()
	first := r1.Status()
	if first.Events == 0 || first.Events >= int64(len(st.Envs)) {
		t.Fatalf("first run applied %d of %d events; want a stop mid-stream", first.Events, len(st.Envs))
	}

	// Second run: picks up where the first stopped.
	r2, stop2 := startRunner(t, projections.RunnerConfig{}, pool, brokers, orders)
	waitCaughtUp(t, pool, brokers, readmodels.NameOrders, time.Minute)
	stop2()
	if got := first.Events + r2.Status().Events; got != int64(len(st.Envs)) {
		t.Errorf("runs applied %d + %d events, want %d in all", first.Events, r2.Status().Events, len(st.Envs))
	}
	want := reference(t, st.Envs, 4)
	if got := readmodelstest.Snapshot(t, pool); got != want {
		t.Fatalf("after a restart the read model differs:\ngot  %s\nwant %s", got, want)
	}

	// Third run after losing the group's Kafka offsets: everything is
	// delivered again, and the checkpoints skip all of it.
	deleteGroup(t, brokers, readmodels.NameOrders)
	r3, stop3 := startRunner(t, projections.RunnerConfig{}, pool, brokers, orders)
	for r3.Status().Skipped < int64(len(st.Envs)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop3()
	if s := r3.Status(); s.Skipped != int64(len(st.Envs)) || s.Events != 0 {
		t.Fatalf("replay from offset 0: status %+v, want all %d skipped", s, len(st.Envs))
	}
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
	if got := readmodelstest.Snapshot(t, pool); got != want {
		t.Fatalf("replay changed the read model:\ngot  %s\nwant %s", got, want)
	}
}

func TestRunnerPoisonInTheMiddle(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 1) // one partition: everything after the poison waits on it
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 24, 2, 40)
	mid := len(st.Envs) / 2
	publish(t, brokers, st.Envs[:mid])
	produceRaw(t, brokers, []string{"junk"}, []string{"junk-1"}, [][]byte{[]byte("{not an envelope")})
	unknown := []byte(`{"id":"x/Teleported","type":"Teleported","version":1,"occurred_at":"2025-11-11T20:00:00Z","aggregate_id":"x","payload":{}}`)
	publish(t, brokers, [][]byte{unknown})
	publish(t, brokers, st.Envs[mid:])

	r, _ := startRunner(t, projections.RunnerConfig{}, pool, brokers, readmodelstest.NewOrders(t, pool))
	waitCaughtUp(t, pool, brokers, readmodels.NameOrders, time.Minute)
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
	dl, err := projections.ReadDeadLetters(context.Background(), pool, "", readmodels.NameOrders, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 2 || dl[0].Offset != int64(mid) || dl[1].Offset != int64(mid+1) || dl[1].EventID != "x/Teleported" {
		t.Fatalf("dead letters %+v, want offsets %d and %d", dl, mid, mid+1)
	}
	if s := r.Status(); s.DeadLetters != 2 || s.Events != int64(len(st.Envs)) {
		t.Fatalf("status %+v", s)
	}
}

// flaky fails its first n batches the way an unreachable Postgres does.
type flaky struct {
	projections.Projection
	n *atomic.Int32
}

func (f flaky) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	if f.n.Add(-1) >= 0 {
		return errors.New("connection refused (simulated)")
	}
	return f.Projection.Apply(ctx, tx, batch)
}

func TestRunnerRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 4)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 25, 2, 30)
	publish(t, brokers, st.Envs)
	var n atomic.Int32
	n.Store(4)
	cfg := projections.RunnerConfig{RetryMin: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	r, _ := startRunner(t, cfg, pool, brokers, flaky{readmodelstest.NewOrders(t, pool), &n})
	waitCaughtUp(t, pool, brokers, readmodels.NameOrders, time.Minute)
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
	if s := r.Status(); s.Events != int64(len(st.Envs)) || s.DeadLetters != 0 || s.LastError != "" {
		t.Fatalf("status %+v", s)
	}
}

func TestRunnerConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := projections.NewRunner(projections.RunnerConfig{MaxBatch: -1, RetryMin: time.Second, RetryMax: time.Millisecond,
		CheckpointTable: "a.b.c"}, nil, nil, nil)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"max batch", "retry backoff", "checkpoint table", "subscriber factory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// holding lets a test hold the runner inside Apply.
type holding struct {
	projections.Projection
	entered chan int // receives the batch size when Apply starts
	release chan struct{}
}

func (h holding) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	select {
	case h.entered <- len(batch):
	default:
	}
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return h.Projection.Apply(ctx, tx, batch)
}

// TestRunnerStopFinishesTheBatch stops the runner while a batch is inside
// its transaction: the batch still commits (and is acked), Run returns nil.
func TestRunnerStopFinishesTheBatch(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 4)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 26, 2, 30)
	publish(t, brokers, st.Envs)
	h := holding{readmodelstest.NewOrders(t, pool), make(chan int, 1), make(chan struct{})}
	r, stop := startRunner(t, projections.RunnerConfig{}, pool, brokers, h)
	var n int
	select {
	case n = <-h.entered:
	case <-time.After(time.Minute):
		t.Fatal("no batch")
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.Status().State != projections.StateStopping && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s := r.Status().State; s != projections.StateStopping {
		t.Fatalf("state %s, want stopping", s)
	}
	close(h.release)
	<-stopped
	if s := r.Status(); s.Events != int64(n) || s.Batches != 1 || s.State != projections.StateIdle {
		t.Fatalf("status %+v, want the one batch of %d committed", s, n)
	}
	var applied int64
	pos, err := r.Positions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pos {
		applied += p.Offset + 1
	}
	if applied != int64(n) {
		t.Fatalf("positions %+v cover %d records, want %d", pos, applied, n)
	}

	// The next run continues after it.
	r2, _ := startRunner(t, projections.RunnerConfig{}, pool, brokers, readmodelstest.NewOrders(t, pool))
	waitCaughtUp(t, pool, brokers, readmodels.NameOrders, time.Minute)
	if got := r2.Status().Events; got != int64(len(st.Envs)-n) {
		t.Errorf("second run applied %d, want %d", got, len(st.Envs)-n)
	}
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
}

// TestRunnerStopTimeout: a batch that cannot commit within StopTimeout is
// abandoned unacked, and Run says so.
func TestRunnerStopTimeout(t *testing.T) {
	t.Parallel()
	brokers := kafkaBrokers(t, 2)
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 27, 1, 10)
	publish(t, brokers, st.Envs)
	h := holding{readmodelstest.NewOrders(t, pool), make(chan int, 1), make(chan struct{})} // never released
	r, err := projections.NewRunner(projections.RunnerConfig{StopTimeout: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)},
		pool, subscriberFactory(brokers), h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-h.entered:
	case <-time.After(time.Minute):
		t.Fatal("no batch")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil with the batch uncommitted")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not give up after StopTimeout")
	}
	if pos, _ := r.Positions(context.Background()); len(pos) != 0 {
		t.Fatalf("positions %+v, want none", pos)
	}
}
