package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

const topic = projections.DefaultTopic

func TestApplierMatchesFold(t *testing.T) {
	t.Parallel()
	pool := readmodelstest.NewPool(t)
	a := readmodelstest.NewApplier(t, pool, readmodelstest.NewOrders(t, pool))
	st := readmodelstest.Gen(t, 1, 5, 60)
	recs := st.Records(topic, 8)
	rng := rand.New(rand.NewPCG(2, 3))

	// Runner-shaped batches, then rebuild-shaped ones (many per partition).
	half := len(recs) / 2
	res := readmodelstest.ApplyAll(t, a, readmodelstest.SmallBatches(recs[:half], rng))
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
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)

	pos, err := projections.ReadPositions(context.Background(), pool, "", readmodels.NameOrders)
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
	pool := readmodelstest.NewPool(t)
	a := readmodelstest.NewApplier(t, pool, readmodelstest.NewOrders(t, pool))
	st := readmodelstest.Gen(t, 4, 3, 40)
	recs := st.Records(topic, 4)
	rng := rand.New(rand.NewPCG(5, 6))
	readmodelstest.ApplyAll(t, a, readmodelstest.SmallBatches(recs, rng))
	before := readmodelstest.Snapshot(t, pool)

	// Everything again, as after a crash before the Kafka commit.
	res := readmodelstest.ApplyAll(t, a, readmodelstest.SmallBatches(recs, rng))
	if res.Applied != 0 || res.Skipped != len(recs) {
		t.Fatalf("second pass %+v, want all %d skipped", res, len(recs))
	}
	// A batch that overlaps the checkpoint: old records are skipped.
	res = readmodelstest.ApplyAll(t, a, [][]eventstore.Record{recs[len(recs)-10:]})
	if res.Applied != 0 || res.Skipped != 10 {
		t.Fatalf("overlap %+v, want 10 skipped", res)
	}
	if after := readmodelstest.Snapshot(t, pool); after != before {
		t.Fatalf("read model changed by redelivery:\nbefore %s\nafter  %s", before, after)
	}
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
}

func TestApplierDuplicatesInTheLog(t *testing.T) {
	t.Parallel()
	// The relay publishes at least once: the same envelope may sit in the
	// log twice, at different offsets, even after later events of its order.
	st := readmodelstest.Gen(t, 7, 3, 40)
	dup := &readmodelstest.Stream{}
	rng := rand.New(rand.NewPCG(8, 9))
	for i := range st.Envs {
		dup.Envs, dup.Keys = append(dup.Envs, st.Envs[i]), append(dup.Keys, st.Keys[i])
		if rng.IntN(3) == 0 { // again, right away or a bit later
			j := min(len(st.Envs)-1, i+rng.IntN(30))
			for k := i + 1; k <= j; k++ {
				if st.Keys[k] == st.Keys[i] {
					dup.Envs, dup.Keys = append(dup.Envs, st.Envs[k]), append(dup.Keys, st.Keys[k])
				}
			}
			dup.Envs, dup.Keys = append(dup.Envs, st.Envs[i]), append(dup.Keys, st.Keys[i])
		}
	}

	clean := readmodelstest.NewPool(t)
	readmodelstest.ApplyAll(t, readmodelstest.NewApplier(t, clean, readmodelstest.NewOrders(t, clean)), [][]eventstore.Record{st.Records(topic, 4)})
	dirty := readmodelstest.NewPool(t)
	readmodelstest.ApplyAll(t, readmodelstest.NewApplier(t, dirty, readmodelstest.NewOrders(t, dirty)), readmodelstest.SmallBatches(dup.Records(topic, 4), rng))

	readmodelstest.AssertMatchesFold(t, dirty, dup.Envs)
	if got, want := readmodelstest.Snapshot(t, dirty), readmodelstest.Snapshot(t, clean); got != want {
		t.Fatalf("duplicates changed the read model:\ngot  %s\nwant %s", got, want)
	}
}

func TestApplierDeadLettersPoison(t *testing.T) {
	t.Parallel()
	pool := readmodelstest.NewPool(t)
	a := readmodelstest.NewApplier(t, pool, readmodelstest.NewOrders(t, pool))
	st := readmodelstest.Gen(t, 11, 2, 20)
	unknown := []byte(`{"id":"x/Teleported","type":"Teleported","version":1,"occurred_at":"2025-11-11T20:00:00Z","aggregate_id":"x","payload":{}}`)
	garbage := []byte("\x00\xffnot json at all")
	mid := len(st.Envs) / 2
	envs := append(append(append([][]byte{}, st.Envs[:mid]...), garbage, unknown), st.Envs[mid:]...)
	keys := append(append(append([]string{}, st.Keys[:mid]...), "x", "x"), st.Keys[mid:]...)
	poisoned := &readmodelstest.Stream{Envs: envs, Keys: keys}
	recs := poisoned.Records(topic, 1) // one partition: the poison sits in front of everything after it

	res := readmodelstest.ApplyAll(t, a, readmodelstest.SmallBatches(recs, rand.New(rand.NewPCG(1, 1))))
	if res.DeadLettered != 2 || res.Applied != len(st.Envs) {
		t.Fatalf("result %+v, want 2 dead letters and %d applied", res, len(st.Envs))
	}
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)

	dl, err := projections.ReadDeadLetters(context.Background(), pool, "", readmodels.NameOrders, 10)
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
	if res := readmodelstest.ApplyAll(t, a, [][]eventstore.Record{recs[mid : mid+2]}); res.Skipped != 2 {
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
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 12, 1, 10)
	env, _ := domain.DecodeEnvelope(st.Envs[5])
	a := readmodelstest.NewApplier(t, pool, rejecting{readmodelstest.NewOrders(t, pool), env.ID})
	res, err := a.Apply(context.Background(), st.Records(topic, 3))
	if err != nil {
		t.Fatal(err)
	}
	// The rejected event is parked, and the later events of its aggregate
	// are held behind it (not applied); every other event applies.
	held := 0
	for _, k := range st.Keys[6:] {
		if k == env.AggregateID {
			held++
		}
	}
	if res.DeadLettered != 1+held || res.Applied != len(st.Envs)-1-held {
		t.Fatalf("result %+v, want 1 parked and %d held", res, held)
	}
	dl, err := projections.ReadDeadLetters(context.Background(), pool, "", readmodels.NameOrders, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1+held || dl[0].EventID != env.ID || !strings.Contains(dl[0].Reason, projections.ErrPoison.Error()) {
		t.Fatalf("dead letters %+v", dl)
	}
	for _, d := range dl[1:] {
		if !strings.HasPrefix(d.Reason, "held: ") {
			t.Errorf("letter %+v: want held behind %s", d, env.ID)
		}
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
	pool := readmodelstest.NewPool(t)
	if _, err := pool.Exec(context.Background(), `CREATE TABLE counts (partition int PRIMARY KEY, n bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	st := readmodelstest.Gen(t, 13, 1, 50)
	recs := st.Records(topic, 1)
	// Four appliers (as after a rebalance, or a rebuild racing the runner)
	// feed overlapping batches of the same partition.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			a := readmodelstest.NewApplier(t, pool, counting{})
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
