package projections_test

import (
	"context"
	"hash/fnv"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/projections"
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

// slow delays every batch so that a test can stop a consumer mid-stream.
type slow struct {
	projections.Projection
	d time.Duration
}

func (s slow) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	time.Sleep(s.d)
	return s.Projection.Apply(ctx, tx, batch)
}
