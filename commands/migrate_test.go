package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// TestLegacyLayoutsMigrate: sales written by versions before the one-path
// layout — a classic sale wholly in {sale:ID}:sale with order ids that name
// no shard, and a sharded sale whose head was {sale:ID}:sale — are moved to
// today's layout on first read, and then buy, replay, pay, end and count as
// any sale.
func TestLegacyLayoutsMigrate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ks := f.gate.Keyspace()

	// A classic sale as an earlier version left it.
	classic := f.sale(t, 5, 2, time.Minute)
	k := ks.Shard(classic.ID, 0, 1)
	legacyOrder := classic.ID + "-legacyorder1"
	pipe := f.rdb.TxPipeline()
	pipe.Del(ctx, ks.Head(classic.ID).Hash)
	pipe.HDel(ctx, k.Hash, "shard", "shards")
	pipe.HDel(ctx, ks.ShardCounts(), classic.ID)
	pipe.HSet(ctx, k.Order(legacyOrder), "user", "carl", "qty", 1, "status", "reserved",
		"pay_by", t0.Add(time.Minute).UnixMilli(), "placed_at", t0.UnixMilli(), "amount", 1999, "price", 1999)
	pipe.HSet(ctx, k.Idem, "carl|", legacyOrder)
	pipe.HIncrBy(ctx, k.Units, "carl", 1)
	pipe.ZAdd(ctx, k.Due, redis.Z{Score: float64(t0.Add(time.Minute).UnixMilli()), Member: legacyOrder})
	pipe.HIncrBy(ctx, k.Hash, "remaining", -1)
	pipe.HIncrBy(ctx, k.Hash, "reserved", 1)
	pipe.HIncrBy(ctx, k.Hash, "orders", 1)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// A sharded sale as an earlier version left it: the head in {sale:ID}:sale.
	sharded := f.shardedSale(t, 9, 2, 3, time.Minute)
	if err := f.rdb.Rename(ctx, ks.Head(sharded.ID).Hash, ks.Head(sharded.ID).Legacy).Err(); err != nil {
		t.Fatal(err)
	}

	// A fresh node reads both.
	g, err := commands.NewGate(commands.GateConfig{Clock: f.clock, SaleCacheTTL: time.Nanosecond}, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	v, err := g.Sale(ctx, classic.ID)
	if err != nil || v.Remaining != 4 || v.Shards != 0 {
		t.Fatalf("classic sale after migration: %+v, %v", v, err)
	}
	if f.rdb.Exists(ctx, ks.Head(classic.ID).Hash).Val() != 1 {
		t.Fatal("classic sale: no head written")
	}
	again, err := g.Purchase(ctx, commands.Purchase{SaleID: classic.ID, UserID: "carl"})
	if err != nil || again.OrderID != legacyOrder || !again.Replayed {
		t.Fatalf("carl's retry = %+v, %v; want his legacy order", again, err)
	}
	if _, err := g.Pay(ctx, commands.Pay{OrderID: legacyOrder, UserID: "carl", PaymentRef: "p"}); err != nil {
		t.Fatalf("pay the legacy order: %v", err)
	}
	for _, u := range []string{"ann", "bob", "cid", "dan"} {
		if _, err := g.Purchase(ctx, commands.Purchase{SaleID: classic.ID, UserID: u}); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: classic.ID, UserID: "eve"}); !errors.Is(err, domain.ErrSoldOut) {
		t.Fatalf("sixth buyer = %v, want sold out", err)
	}
	c, ok, err := g.SaleCounters(ctx, classic.ID)
	if err != nil || !ok || c.Orders != 5 || c.Paid != 1 || c.Remaining != 0 || len(c.Shards) != 1 {
		t.Fatalf("classic counters %+v, %v", c, err)
	}

	sv, err := g.Sale(ctx, sharded.ID)
	if err != nil || sv.Shards != 3 || sv.Remaining != 9 {
		t.Fatalf("sharded sale after migration: %+v, %v", sv, err)
	}
	if f.rdb.Exists(ctx, ks.Head(sharded.ID).Legacy).Val() != 0 {
		t.Fatal("sharded sale: the legacy head is still there")
	}
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sharded.ID, UserID: "ann", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	ended, err := g.EndSale(ctx, commands.EndSale{SaleID: sharded.ID})
	if err != nil || ended.State != commands.SaleEnded || ended.Unsold != 7 {
		t.Fatalf("end of the migrated sharded sale: %+v, %v", ended, err)
	}
	ended, err = g.EndSale(ctx, commands.EndSale{SaleID: classic.ID})
	if err != nil || ended.Unsold != 0 {
		t.Fatalf("end of the migrated classic sale: %+v, %v", ended, err)
	}
}
