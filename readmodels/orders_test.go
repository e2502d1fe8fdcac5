package readmodels_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

// TestOrdersApplyIsIdempotent calls the projection directly, without the
// checkpoint, with every event twice and a redelivered OrderPlaced after the
// order's end: the rows must still equal the fold.
func TestOrdersApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := readmodelstest.NewPool(t)
	o := readmodelstest.NewOrders(t, pool)
	st := readmodelstest.Gen(t, 10, 2, 30)
	var events []projections.Event
	var placed []projections.Event
	for i, b := range st.Envs {
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
	readmodelstest.AssertMatchesFold(t, pool, st.Envs)
}

// TestOrdersOutOfOrder feeds each aggregate's events in reverse: a terminal
// event before OrderPlaced must not be undone by it, and the rows must still
// equal the fold of the same log.
func TestOrdersOutOfOrder(t *testing.T) {
	t.Parallel()
	pool := readmodelstest.NewPool(t)
	st := readmodelstest.Gen(t, 14, 3, 40)
	slots := map[string][]int{}
	for i, k := range st.Keys {
		slots[k] = append(slots[k], i)
	}
	rev := &readmodelstest.Stream{Envs: make([][]byte, len(st.Envs)), Keys: st.Keys}
	for _, idx := range slots {
		for j, i := range idx {
			rev.Envs[i] = st.Envs[idx[len(idx)-1-j]]
		}
	}
	readmodelstest.ApplyAll(t, readmodelstest.NewApplier(t, pool, readmodelstest.NewOrders(t, pool)), readmodelstest.SmallBatches(rev.Records(topic, 4), rand.New(rand.NewPCG(1, 2))))
	readmodelstest.AssertMatchesFold(t, pool, rev.Envs)
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM orders WHERE status = 'reserved'
		AND history @> '[{"type":"OrderPaid"}]'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d paid orders moved back to reserved (err %v)", n, err)
	}
}
