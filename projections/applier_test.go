package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
)

const topic = projections.DefaultTopic

func newApplier(t testing.TB, pool *pgxpool.Pool, p projections.Projection) *projections.Applier {
	t.Helper()
	a, err := projections.NewApplier(projections.ApplierConfig{}, pool, p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// runnerBatches cuts recs into batches the way the Runner makes them: at most
// one record per partition, partitions in random order.
func runnerBatches(recs []projections.Record, rng *rand.Rand) [][]projections.Record {
	queues := map[int32][]projections.Record{}
	for _, r := range recs {
		queues[r.Partition] = append(queues[r.Partition], r)
	}
	var out [][]projections.Record
	for len(queues) > 0 {
		var b []projections.Record
		for p, q := range queues {
			if rng.IntN(4) == 0 && len(b) > 0 {
				continue // this partition's message is late for the batch
			}
			b = append(b, q[0])
			if len(q) == 1 {
				delete(queues, p)
			} else {
				queues[p] = q[1:]
			}
		}
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

func applyAll(t testing.TB, a *projections.Applier, batches [][]projections.Record) projections.ApplyResult {
	t.Helper()
	var sum projections.ApplyResult
	for _, b := range batches {
		res, err := a.Apply(context.Background(), b)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		sum.Applied += res.Applied
		sum.Skipped += res.Skipped
		sum.DeadLettered += res.DeadLettered
	}
	return sum
}

func TestApplierMatchesFold(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	a := newApplier(t, pool, newOrders(t, pool))
	st := genStream(t, 1, 5, 60)
	recs := st.records(topic, 8)
	rng := rand.New(rand.NewPCG(2, 3))

	// Runner-shaped batches, then rebuild-shaped ones (many per partition).
	half := len(recs) / 2
	res := applyAll(t, a, runnerBatches(recs[:half], rng))
	for i := half; i < len(recs); i += 97 {
		r, err := a.Apply(context.Background(), recs[i:min(i+97, len(recs))])
		if err != nil {
			t.Fatal(err)
		}
		res.Applied += r.Applied
	}
	if res.Applied != len(recs) || res.Skipped != 0 || res.DeadLettered != 0 {
		t.Fatalf("result %+v, want %d applied", res, len(recs))
	}
	assertMatchesFold(t, pool, st.envs)

	pos, err := projections.ReadPositions(context.Background(), pool, "", projections.NameOrders)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	for _, r := range recs {
		want[r.Partition] = r.Offset
	}
	if len(pos) != len(want) {
		t.Fatalf("positions %v, want %v", pos, want)
	}
	for _, p := range pos {
		if p.Offset != want[p.Partition] || p.Topic != topic {
			t.Errorf("position %+v, want offset %d", p, want[p.Partition])
		}
	}
}

func TestApplierRedeliveryChangesNothing(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	a := newApplier(t, pool, newOrders(t, pool))
	st := genStream(t, 4, 3, 40)
	recs := st.records(topic, 4)
	rng := rand.New(rand.NewPCG(5, 6))
	applyAll(t, a, runnerBatches(recs, rng))
	before := snapshot(t, pool)

	// Everything again, as after a crash before the Kafka commit.
	res := applyAll(t, a, runnerBatches(recs, rng))
	if res.Applied != 0 || res.Skipped != len(recs) {
		t.Fatalf("second pass %+v, want all %d skipped", res, len(recs))
	}
	// A batch that overlaps the checkpoint: old records are skipped.
	res = applyAll(t, a, [][]projections.Record{recs[len(recs)-10:]})
	if res.Applied != 0 || res.Skipped != 10 {
		t.Fatalf("overlap %+v, want 10 skipped", res)
	}
	if after := snapshot(t, pool); after != before {
		t.Fatalf("read model changed by redelivery:\nbefore %s\nafter  %s", before, after)
	}
	assertMatchesFold(t, pool, st.envs)
}

func TestApplierDuplicatesInTheLog(t *testing.T) {
	t.Parallel()
	// The relay publishes at least once: the same envelope may sit in the
	// log twice, at different offsets, even after later events of its order.
	st := genStream(t, 7, 3, 40)
	dup := &stream{}
	rng := rand.New(rand.NewPCG(8, 9))
	for i := range st.envs {
		dup.envs, dup.keys = append(dup.envs, st.envs[i]), append(dup.keys, st.keys[i])
		if rng.IntN(3) == 0 { // again, right away or a bit later
			j := min(len(st.envs)-1, i+rng.IntN(30))
			for k := i + 1; k <= j; k++ {
				if st.keys[k] == st.keys[i] {
					dup.envs, dup.keys = append(dup.envs, st.envs[k]), append(dup.keys, st.keys[k])
				}
			}
			dup.envs, dup.keys = append(dup.envs, st.envs[i]), append(dup.keys, st.keys[i])
		}
	}

	clean := newPool(t)
	applyAll(t, newApplier(t, clean, newOrders(t, clean)), [][]projections.Record{st.records(topic, 4)})
	dirty := newPool(t)
	applyAll(t, newApplier(t, dirty, newOrders(t, dirty)), runnerBatches(dup.records(topic, 4), rng))

	assertMatchesFold(t, dirty, dup.envs)
	if got, want := snapshot(t, dirty), snapshot(t, clean); got != want {
		t.Fatalf("duplicates changed the read model:\ngot  %s\nwant %s", got, want)
	}
}

// TestOrdersApplyIsIdempotent calls the projection directly, without the
// checkpoint, with every event twice and a redelivered OrderPlaced after the
// order's end: the rows must still equal the fold.
func TestOrdersApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	o := newOrders(t, pool)
	st := genStream(t, 10, 2, 30)
	var events []projections.Event
	var placed []projections.Event
	for i, b := range st.envs {
		env, ev, err := domain.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e := projections.Event{Envelope: env, Event: ev, Topic: topic, Offset: int64(i)}
		events = append(events, e, e)
		if env.Type == domain.TypeOrderPlaced {
			placed = append(placed, e)
		}
	}
	ctx := context.Background()
	for _, batch := range [][]projections.Event{events, events, placed} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return o.Apply(ctx, tx, batch) })
		if err != nil {
			t.Fatal(err)
		}
	}
	assertMatchesFold(t, pool, st.envs)
}

func TestApplierDeadLettersPoison(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	a := newApplier(t, pool, newOrders(t, pool))
	st := genStream(t, 11, 2, 20)
	unknown := []byte(`{"id":"x/Teleported","type":"Teleported","version":1,"occurred_at":"2025-11-11T20:00:00Z","aggregate_id":"x","payload":{}}`)
	garbage := []byte("\x00\xffnot json at all")
	mid := len(st.envs) / 2
	envs := append(append(append([][]byte{}, st.envs[:mid]...), garbage, unknown), st.envs[mid:]...)
	keys := append(append(append([]string{}, st.keys[:mid]...), "x", "x"), st.keys[mid:]...)
	poisoned := &stream{envs: envs, keys: keys}
	recs := poisoned.records(topic, 1) // one partition: the poison sits in front of everything after it

	res := applyAll(t, a, runnerBatches(recs, rand.New(rand.NewPCG(1, 1))))
	if res.DeadLettered != 2 || res.Applied != len(st.envs) {
		t.Fatalf("result %+v, want 2 dead letters and %d applied", res, len(st.envs))
	}
	assertMatchesFold(t, pool, st.envs)

	dl, err := projections.ReadDeadLetters(context.Background(), pool, "", projections.NameOrders, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 2 {
		t.Fatalf("dead letters %+v, want 2", dl)
	}
	if dl[0].Offset != int64(mid) || string(dl[0].Payload) != string(garbage) || dl[0].EventID != "" {
		t.Errorf("first dead letter %+v", dl[0])
	}
	if dl[1].Offset != int64(mid+1) || dl[1].EventID != "x/Teleported" || dl[1].Reason == "" {
		t.Errorf("second dead letter %+v", dl[1])
	}
	// Redelivered poison is not dead-lettered twice.
	if res := applyAll(t, a, [][]projections.Record{recs[mid : mid+2]}); res.Skipped != 2 {
		t.Fatalf("redelivered poison: %+v", res)
	}
}

// rejecting wraps a projection and rejects one event id for good.
type rejecting struct {
	projections.Projection
	id string
}

func (r rejecting) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	for _, e := range batch {
		if e.Envelope.ID == r.id {
			return fmt.Errorf("event %s: %w", e.Envelope.ID, projections.ErrPoison)
		}
	}
	return r.Projection.Apply(ctx, tx, batch)
}

func TestApplierIsolatesRejectedEvent(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	st := genStream(t, 12, 1, 10)
	env, _ := domain.DecodeEnvelope(st.envs[5])
	a := newApplier(t, pool, rejecting{newOrders(t, pool), env.ID})
	res, err := a.Apply(context.Background(), st.records(topic, 3))
	if err != nil {
		t.Fatal(err)
	}
	if res.DeadLettered != 1 || res.Applied != len(st.envs)-1 {
		t.Fatalf("result %+v", res)
	}
	dl, err := projections.ReadDeadLetters(context.Background(), pool, "", projections.NameOrders, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || dl[0].EventID != env.ID || !strings.Contains(dl[0].Reason, projections.ErrPoison.Error()) {
		t.Fatalf("dead letters %+v", dl)
	}
}

// counting counts the events applied to it in a table: any event applied
// twice shows up as a count too high.
type counting struct{}

func (counting) Name() string { return "counting" }

func (counting) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	_, err := tx.Exec(ctx, `INSERT INTO counts (partition, n) VALUES ($1, $2)
		ON CONFLICT (partition) DO UPDATE SET n = counts.n + EXCLUDED.n`, batch[0].Partition, len(batch))
	return err
}

func TestApplierConcurrentAppliersApplyOnce(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	if _, err := pool.Exec(context.Background(), `CREATE TABLE counts (partition int PRIMARY KEY, n bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	st := genStream(t, 13, 1, 50)
	recs := st.records(topic, 1)
	// Four appliers (as after a rebalance, or a rebuild racing the runner)
	// feed overlapping batches of the same partition.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			a := newApplier(t, pool, counting{})
			for i := 0; i < len(recs); i += 7 + w {
				if _, err := a.Apply(context.Background(), recs[i:min(len(recs), i+7+w+3)]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT n FROM counts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != int64(len(recs)) {
		t.Fatalf("applied %d events, want exactly %d", n, len(recs))
	}
}

// TestOrdersOutOfOrder feeds each aggregate's events in reverse: a terminal
// event before OrderPlaced must not be undone by it, and the rows must still
// equal the fold of the same log.
func TestOrdersOutOfOrder(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	st := genStream(t, 14, 3, 40)
	slots := map[string][]int{}
	for i, k := range st.keys {
		slots[k] = append(slots[k], i)
	}
	rev := &stream{envs: make([][]byte, len(st.envs)), keys: st.keys}
	for _, idx := range slots {
		for j, i := range idx {
			rev.envs[i] = st.envs[idx[len(idx)-1-j]]
		}
	}
	applyAll(t, newApplier(t, pool, newOrders(t, pool)), runnerBatches(rev.records(topic, 4), rand.New(rand.NewPCG(1, 2))))
	assertMatchesFold(t, pool, rev.envs)
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM orders WHERE status = 'reserved'
		AND history @> '[{"type":"OrderPaid"}]'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d paid orders moved back to reserved (err %v)", n, err)
	}
}
