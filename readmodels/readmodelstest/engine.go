package readmodelstest

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
)

// Names are the three read models' projection names.
var Names = []string{readmodels.NameOrders, readmodels.NameInventory, readmodels.NameDaily}

// All returns the three projections over pool.
func All(t testing.TB, pool *pgxpool.Pool) []projections.Projection {
	return []projections.Projection{NewOrders(t, pool), NewInventory(t, pool), NewDaily(t, pool)}
}

// AssertAllMatchFold checks the three read models against the fold of envs.
func AssertAllMatchFold(t testing.TB, pool *pgxpool.Pool, envs [][]byte) {
	t.Helper()
	AssertMatchesFold(t, pool, envs)
	AssertInventoryMatchesFold(t, pool, envs)
	AssertDailyMatchesFold(t, pool, envs, BizZone)
}

// NewApplier returns an Applier of p with the default tables.
func NewApplier(t testing.TB, pool *pgxpool.Pool, p projections.Projection) *projections.Applier {
	t.Helper()
	a, err := projections.NewApplier(projections.ApplierConfig{}, pool, p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// SmallBatches cuts recs into the smallest batches a live consumer can
// make: at most one record per partition, partitions in random order.
func SmallBatches(recs []eventstore.Record, rng *rand.Rand) [][]eventstore.Record {
	queues := map[int32][]eventstore.Record{}
	for _, r := range recs {
		queues[r.Partition] = append(queues[r.Partition], r)
	}
	var out [][]eventstore.Record
	for len(queues) > 0 {
		var b []eventstore.Record
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

// ApplyAll applies batches in order and sums their results.
func ApplyAll(t testing.TB, a *projections.Applier, batches [][]eventstore.Record) projections.ApplyResult {
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
