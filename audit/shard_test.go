package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// TestAuditShardedSale: a sharded sale through the log and the orders read
// model passes the audit (moves included), and a shard whose pool drifts is
// named even when the sale's total is what a second drift makes it.
func TestAuditShardedSale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	t0 := w.clock.Now()
	const shards = 3
	sale, err := w.gate.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "hot", Stock: 9, PriceCents: 100, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: 3, PayWithinS: 60,
		},
		Shards: shards,
	}})
	if err != nil {
		t.Fatal(err)
	}
	var home0 []string
	for i := 0; len(home0) < 3; i++ {
		if u := fmt.Sprint("u", i); domain.HomeShard(u, shards) == 0 {
			home0 = append(home0, u)
		}
	}
	// Shard 0 (3 units) sells out to one buyer; the next two pull.
	var orders []commands.Reservation
	for i, u := range home0 {
		r, err := w.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: u, Quantity: int64(3 - i)})
		if err != nil {
			t.Fatalf("purchase %d: %v", i, err)
		}
		orders = append(orders, r)
	}
	if _, err := w.gate.Pay(ctx, commands.Pay{OrderID: orders[0].OrderID, UserID: home0[0], PaymentRef: "p"}); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(2 * time.Minute)
	if res, err := w.gate.Sweep(ctx); err != nil || res.Expired != 2 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	w.forward()
	w.project()
	expect(t, w.audit(time.Second))

	// Two shards drift in opposite directions: the sale's sum holds, the
	// shards do not.
	w.rdb.HIncrBy(ctx, w.gate.Keyspace().Shard(sale.ID, 1, shards).Hash, "remaining", 1)
	w.rdb.HIncrBy(ctx, w.gate.Keyspace().Shard(sale.ID, 2, shards).Hash, "remaining", -1)
	expect(t, w.audit(time.Second), "shard 1 remaining")
	w.rdb.HIncrBy(ctx, w.gate.Keyspace().Shard(sale.ID, 1, shards).Hash, "remaining", -1)
	w.rdb.HIncrBy(ctx, w.gate.Keyspace().Shard(sale.ID, 2, shards).Hash, "remaining", 1)

	if _, err := w.gate.EndSale(ctx, commands.EndSale{SaleID: sale.ID}); err != nil {
		t.Fatal(err)
	}
	w.forward()
	w.project()
	expect(t, w.audit(time.Second))
}
