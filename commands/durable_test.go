package commands_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/localsvc"
	"github.com/seckill/seckill/internal/testenv"
)

// TestReplicaAcknowledgement: with MinReplicas 1 a purchase and a payment
// are answered once a replica holds them; with the replica gone the gate
// answers ErrUnavailable (503) instead of an order that a failover would
// lose, and the client's retry with the same key, once the replica is back,
// gets the order the first attempt made.
func TestReplicaAcknowledgement(t *testing.T) {
	ctx := context.Background()
	primary := testenv.RedisServer(t)
	replica := testenv.RedisServer(t, localsvc.RedisConfig{ExtraArgs: []string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port())}})
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	rep := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { _ = rep.Close() })
	testenv.WaitFor(t, 10*time.Second, func() bool {
		info, _ := rep.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	// The replica's link being up is not yet a replica acknowledging
	// writes: the first write after the sync has been seen to wait longer
	// than the gate's 300 ms on a busy machine. Wait until a write of the
	// test's own is acknowledged, so the gate's first write measures the
	// steady state.
	testenv.WaitFor(t, 10*time.Second, func() bool {
		if err := rdb.Set(ctx, "warm-up", "1", 0).Err(); err != nil {
			return false
		}
		n, _ := rdb.Wait(ctx, 1, time.Second).Result()
		return n >= 1
	})
	clock := commands.NewManualClock(t0)
	g, err := commands.NewGate(commands.GateConfig{Clock: clock, SaleCacheTTL: time.Nanosecond, MinReplicas: 1, ReplicaTimeout: 300 * time.Millisecond}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	sale, err := g.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: 10, PriceCents: 100, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: 2, PayWithinS: 60,
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann", IdempotencyKey: "k1"})
	if err != nil {
		t.Fatalf("purchase with the replica up: %v", err)
	}
	if n, _ := rep.Exists(ctx, g.Keyspace().Shard(sale.ID, 0, 1).Order(res.OrderID)).Result(); n != 1 {
		t.Fatalf("answered, but the replica does not hold order %s", res.OrderID)
	}
	if _, err := g.Pay(ctx, commands.Pay{OrderID: res.OrderID, UserID: "ann", PaymentRef: "p1"}); err != nil {
		t.Fatalf("pay with the replica up: %v", err)
	}

	if err := replica.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "bob", IdempotencyKey: "k2"})
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("purchase without a replica = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the refusal took %v; the replica timeout is 300ms", d)
	}

	if err := replica.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, func() bool {
		info, _ := rep.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	again, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "bob", IdempotencyKey: "k2"})
	if err != nil || !again.Replayed {
		t.Fatalf("retry once the replica is back = %+v, %v; want the first attempt's order", again, err)
	}
	c, _, err := g.SaleCounters(ctx, sale.ID)
	if err != nil || c.Orders != 2 || c.Remaining != 8 {
		t.Fatalf("counters %+v, %v; want 2 orders and 8 left", c, err)
	}
}
