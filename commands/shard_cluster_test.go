package commands_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/testenv"
)

// foldOutboxes folds every outbox of g in rdb (a cluster client reads each
// stream from its master) and fails the test on any violation.
func foldOutboxes(t *testing.T, rdb redis.UniversalClient, g *commands.Gate) *domain.Fold {
	t.Helper()
	ctx := context.Background()
	streams, err := rdb.SMembers(ctx, g.OutboxesKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	fd := domain.NewFold()
	for _, s := range streams {
		entries, err := rdb.XRange(ctx, s, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			for i := 1; i <= len(e.Values); i++ {
				env, ev, err := domain.Decode([]byte(e.Values[strconv.Itoa(i)].(string)))
				if err != nil {
					t.Fatalf("outbox %s entry %s: %v", s, e.ID, err)
				}
				fd.Apply(env, ev)
			}
		}
	}
	if v := fd.Violations(); len(v) > 0 {
		t.Fatalf("the log breaks invariants:\n%v", v)
	}
	return fd
}

// TestShardedSaleOnRedisCluster: a hot sale of 3 shards on a real 3-master
// cluster. Its shards land on three different masters (shardTag spreads
// their slots), every script runs on one slot, and a burst from two nodes
// sells exactly the stock within the per-user limit, every unit.
func TestShardedSaleOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cc := testenv.RedisClusterClient(t, 3)
	clock := commands.NewManualClock(t0)
	var nodes []*commands.Gate
	for range 2 {
		g, err := commands.NewGate(commands.GateConfig{Clock: clock}, cc)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Load(ctx); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, g)
	}
	g := nodes[0]
	const (
		stock, shards, limit = 150, 3, 2
		users                = 600
	)
	sale, err := g.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "hot", Stock: stock, PriceCents: 100, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: limit, PayWithinS: 60,
		},
		Shards: shards,
	}})
	if err != nil {
		t.Fatal(err)
	}
	masters := map[string]int{}
	for i := range shards {
		node, err := cc.MasterForKey(ctx, g.Keyspace().Shard(sale.ID, i, shards).Hash)
		if err != nil {
			t.Fatal(err)
		}
		masters[node.Options().Addr]++
	}
	if len(masters) != shards {
		t.Errorf("shards on masters %v, want one on each of 3", masters)
	}

	// Two thirds of the buyers live on shard 0, so it runs dry first and
	// they pull from the shards on the other masters.
	hot := homeUsers("c", 0, shards, users*2/3)
	var (
		mu   sync.Mutex
		held = map[string]int64{}
		sold atomic.Int64
	)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range work {
				u := fmt.Sprint("cold", i)
				if i < len(hot) {
					u = hot[i]
				}
				qty := int64(1 + i%2)
				r, err := nodes[w%2].Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: u, Quantity: qty})
				switch {
				case err == nil:
					sold.Add(r.Quantity)
					mu.Lock()
					held[u] += r.Quantity
					mu.Unlock()
				case errors.Is(err, domain.ErrSoldOut), errors.Is(err, domain.ErrInsufficientStock):
				default:
					t.Errorf("purchase: %v", err)
				}
			}
		})
	}
	for i := range users {
		work <- i
	}
	close(work)
	wg.Wait()
	// Late buyers take whatever is left, through a node that took no part
	// in the burst: a burst node may answer sold_out from memory for
	// SoldOutTTL after a pull found every shard empty while units were on
	// their way between two of them (guard.go: memory refuses for a moment,
	// never oversells), and this loop stops at the first sold_out.
	late, err := commands.NewGate(commands.GateConfig{Clock: clock}, cc)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		r, err := late.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprint("late", i)})
		if errors.Is(err, domain.ErrSoldOut) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sold.Add(r.Quantity)
	}
	if sold.Load() != stock {
		t.Errorf("sold %d, want %d", sold.Load(), stock)
	}
	for u, n := range held {
		if n > limit {
			t.Errorf("%s holds %d", u, n)
		}
	}
	fd := foldOutboxes(t, cc, g)
	s := fd.Sales[sale.ID]
	checkGateMatchesLog(t, g, fd, sale.ID)
	if s.ReservedQty != stock || s.Remaining() != 0 || s.Moves == 0 {
		t.Errorf("log: reserved %d remaining %d moves %d", s.ReservedQty, s.Remaining(), s.Moves)
	}
	var orders int
	if err := g.EachOrder(ctx, sale.ID, func(commands.GateOrder) error { orders++; return nil }); err != nil {
		t.Fatal(err)
	}
	if int64(orders) != s.Orders {
		t.Errorf("EachOrder saw %d orders, the log has %d", orders, s.Orders)
	}
	// Entries, not events: a batch of purchases is one entry. Counted here
	// from the sale's keys, apart from the registry OutboxBacklog reads.
	var entries int64
	ks := g.Keyspace()
	for _, key := range []string{ks.Head(sale.ID).Outbox, ks.Shard(sale.ID, 0, shards).Outbox, ks.Shard(sale.ID, 1, shards).Outbox, ks.Shard(sale.ID, 2, shards).Outbox} {
		entries += cc.XLen(ctx, key).Val()
	}
	backlog, err := g.OutboxBacklog(ctx)
	if err != nil || backlog[sale.ID] != entries || entries < 1+s.Moves {
		t.Errorf("outbox backlog %v %v, want %d entries for the sale (at least %d)", backlog, err, entries, 1+s.Moves)
	}

	// Expire everything and end: the pools are collected on every master.
	clock.Advance(2 * time.Minute)
	if res, err := g.Sweep(ctx); err != nil || res.Expired != len(fd.Orders) {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	if _, err := g.EndSale(ctx, commands.EndSale{SaleID: sale.ID}); err != nil {
		t.Fatal(err)
	}
	fd = foldOutboxes(t, cc, g)
	if s := fd.Sales[sale.ID]; !s.Ended || s.Unsold != stock {
		t.Errorf("log after the end: ended %v unsold %d", s.Ended, s.Unsold)
	}
	checkGateMatchesLog(t, g, fd, sale.ID)
	t.Logf("%d orders, %d moves; shards on %v", len(fd.Orders), s.Moves, masters)
}

// shardBenchEnv turns on TestShardThroughput.
const shardBenchEnv = "SECKILL_SHARD_BENCH"

// TestShardThroughput measures purchases per second of ONE hot sale with 1
// shard and with 3, on a 3-master Redis Cluster and on one redis-server, by
// calling the gate directly from concurrent goroutines (no HTTP), in the same
// run. Every purchase is a new user who gets a reservation: the full script.
// A measurement, not a check:
//
//	SECKILL_SHARD_BENCH=1 go test -run TestShardThroughput -v ./commands
func TestShardThroughput(t *testing.T) {
	if os.Getenv(shardBenchEnv) == "" {
		t.Skipf("a benchmark: set %s=1 to run it", shardBenchEnv)
	}
	dur := 4 * time.Second
	if v, err := time.ParseDuration(os.Getenv(shardBenchEnv + "_DURATION")); err == nil {
		dur = v
	}
	conc := 64
	if v, err := strconv.Atoi(os.Getenv(shardBenchEnv + "_CONC")); err == nil {
		conc = v
	}
	ctx := context.Background()
	addrs := testenv.RedisCluster(t, 3)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: conc})
	defer cc.Close()
	single := testenv.RedisServer(t)
	sc := redis.NewClient(&redis.Options{Addr: single.Addr(), PoolSize: conc})
	defer sc.Close()
	nodeClients := map[string][]*redis.Client{"single": {sc}}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		defer c.Close()
		nodeClients["cluster"] = append(nodeClients["cluster"], c)
	}
	redisCPU := func(where string) []float64 {
		var out []float64
		for _, c := range nodeClients[where] {
			info, err := c.Info(ctx, "cpu").Result()
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for _, line := range strings.Split(info, "\r\n") {
				k, v, _ := strings.Cut(line, ":")
				if k == "used_cpu_sys" || k == "used_cpu_user" {
					f, _ := strconv.ParseFloat(v, 64)
					sum += f
				}
			}
			out = append(out, sum)
		}
		return out
	}
	selfCPU := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	type scenario struct {
		where  string
		rdb    redis.UniversalClient
		shards int
	}
	var scenarios []scenario
	for range 3 { // interleaved, to see the noise
		for _, sh := range []int{1, 3} {
			scenarios = append(scenarios, scenario{"cluster", cc, sh})
		}
	}
	for _, sh := range []int{1, 3} {
		scenarios = append(scenarios, scenario{"single", sc, sh})
	}
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-8s %6s %12s %9s %9s %12s   %s\n", "redis", "shards", "purchases/s", "p50", "p99", "busiest core",
		"CPU µs/purchase: this process / each redis-server")
	for n, sc := range scenarios {
		g, err := commands.NewGate(commands.GateConfig{}, sc.rdb)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Load(ctx); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		sale, err := g.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
			SaleTerms: domain.SaleTerms{
				Name: "bench", Stock: domain.MaxStock, PriceCents: 100, StartsAt: now.Add(-time.Second),
				EndsAt: now.Add(time.Hour), PerUserLimit: 1, PayWithinS: 3600,
			},
			Shards: int64(sc.shards),
		}})
		if err != nil {
			t.Fatal(err)
		}
		var (
			count atomic.Int64
			mu    sync.Mutex
			lats  []time.Duration
		)
		cpu0, self0 := redisCPU(sc.where), selfCPU()
		deadline := time.Now().Add(dur)
		var wg sync.WaitGroup
		for w := range conc {
			wg.Go(func() {
				var mine []time.Duration
				for i := 0; time.Now().Before(deadline); i++ {
					start := time.Now()
					_, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprintf("b%d-%d-%d", n, w, i)})
					if err != nil {
						t.Errorf("purchase: %v", err)
						return
					}
					mine = append(mine, time.Since(start))
					count.Add(1)
				}
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		cpu1, self1 := redisCPU(sc.where), selfCPU()
		total := count.Load()
		slices.Sort(lats)
		per := func(d float64) string { return fmt.Sprintf("%.0f", d*1e6/float64(total)) }
		var redisPer []string
		var busiest float64 // the busiest redis-server's share of one core
		for i := range cpu1 {
			redisPer = append(redisPer, per(cpu1[i]-cpu0[i]))
			busiest = max(busiest, (cpu1[i]-cpu0[i])/dur.Seconds())
		}
		fmt.Fprintf(&report, "%-8s %6d %12.0f %9s %9s %11.0f%%   %s / %s\n", sc.where, sc.shards, float64(total)/dur.Seconds(),
			lats[len(lats)/2].Round(10*time.Microsecond), lats[len(lats)*99/100].Round(10*time.Microsecond),
			100*busiest, per((self1 - self0).Seconds()), strings.Join(redisPer, " "))
	}
	t.Log(report.String())
}
