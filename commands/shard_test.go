package commands_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// Sharded stock (docs/sharding.md): exactness under a hot burst, pulls and
// moves, rebalancing, recovery of a mover that died, the end, restore.

func (f fixture) shardedSale(t *testing.T, stock, limit, shards int64, payWithin time.Duration) commands.SaleView {
	t.Helper()
	s, err := f.gate.CreateSale(context.Background(), commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "hot phone", Stock: stock, PriceCents: 1999, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: limit, PayWithinS: int64(payWithin / time.Second),
		},
		Shards: shards,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Shards != shards || s.Remaining != stock {
		t.Fatalf("sharded sale = %+v, want %d shards and %d remaining", s, shards, stock)
	}
	return s
}

// homeUsers returns count user ids whose home shard of n is shard.
func homeUsers(prefix string, shard, n, count int) []string {
	var out []string
	for i := 0; len(out) < count; i++ {
		if u := fmt.Sprintf("%s%d", prefix, i); domain.HomeShard(u, n) == shard {
			out = append(out, u)
		}
	}
	return out
}

// checkGateMatchesLog compares the gate's counters of a sale, shard by
// shard, with the fold of its outboxes: what the audit compares.
func checkGateMatchesLog(t *testing.T, g *commands.Gate, fd *domain.Fold, saleID string) commands.SaleCounters {
	t.Helper()
	c, ok, err := g.SaleCounters(context.Background(), saleID)
	if err != nil || !ok {
		t.Fatalf("counters of %s: %v %v", saleID, ok, err)
	}
	s := fd.Sales[saleID]
	if c.Remaining != s.Remaining() || c.Reserved != s.ReservedQty || c.Paid != s.PaidQty || c.Expired != s.ExpiredQty || c.Ended != s.Ended {
		t.Errorf("gate %+v, log remaining %d reserved %d paid %d expired %d ended %v",
			c, s.Remaining(), s.ReservedQty, s.PaidQty, s.ExpiredQty, s.Ended)
	}
	if len(c.Shards) != domain.ShardCount(s.Shards) {
		t.Fatalf("gate has %d shards, log %d", len(c.Shards), s.Shards)
	}
	var sum int64
	for i, sh := range c.Shards {
		if want := s.ShardRemaining(i); sh.Remaining != want {
			t.Errorf("shard %d: gate pool %d (in flight %d), log %d", i, sh.Remaining, sh.InFlight, want)
		}
		sum += sh.Remaining
	}
	if sum != c.Remaining {
		t.Errorf("shards sum to %d, sale remaining %d", sum, c.Remaining)
	}
	return c
}

func TestShardedSaleValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		spec  domain.SaleSpec
		field string
	}{
		{"too many shards", domain.SaleSpec{SaleTerms: domain.SaleTerms{Stock: 1000}, Shards: domain.MaxShards + 1}, "shards"},
		{"more shards than units", domain.SaleSpec{SaleTerms: domain.SaleTerms{Stock: 3}, Shards: 4}, "shards"},
		{"negative", domain.SaleSpec{SaleTerms: domain.SaleTerms{Stock: 3}, Shards: -1}, "shards"},
		{"staged release", domain.SaleSpec{
			SaleTerms: domain.SaleTerms{
				Stock: 100,
			},
			Shards: 2, Protections: domain.Protections{ReleaseStep: 10},
		}, "shards"},
	} {
		spec := tc.spec
		spec.Name, spec.PriceCents, spec.StartsAt, spec.EndsAt = "x", 1, t0, t0.Add(time.Hour)
		_, err := f.gate.CreateSale(context.Background(), commands.CreateSale{Spec: spec})
		var ve *domain.ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("%s: %v, want a validation error on %s", tc.name, err, tc.field)
		}
	}
}

func TestShardTags(t *testing.T) {
	t.Parallel()
	// The XMODEM check value, and a slot Redis documents.
	if got := commands.CRC16("123456789"); got != 0x31C3 {
		t.Errorf("crc16 = %#x, want 0x31c3", got)
	}
	for _, n := range []int{2, 3, 4, 7, 16, 64} {
		for s := range 20 {
			id := fmt.Sprintf("sale%d", s)
			seen := map[string]bool{}
			for i := range n {
				tag := commands.ShardTag(id, i, n)
				slot := int(commands.CRC16(tag)) % 16384
				if lo, hi := i*16384/n, (i+1)*16384/n; slot < lo || slot >= hi {
					t.Errorf("shard %d/%d of %s: tag %s in slot %d, want [%d,%d)", i, n, id, tag, slot, lo, hi)
				}
				if seen[tag] {
					t.Errorf("tag %s twice", tag)
				}
				seen[tag] = true
			}
		}
	}
}

func TestRebalancePlan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		left []int64
		want []int64 // the pools after the plan; nil: no plan
	}{
		{[]int64{0, 10, 10, 10}, []int64{7, 8, 8, 7}},
		{[]int64{0, 0, 0, 5}, []int64{1, 1, 1, 2}},
		{[]int64{0, 1, 1, 1}, nil}, // nothing worth moving
		{[]int64{1, 5, 9, 3}, nil}, // nothing dry
		{[]int64{0, 0, 0, 0}, nil},
		{[]int64{0, 2}, []int64{1, 1}},
	} {
		plan := commands.RebalancePlan(tc.left)
		if tc.want == nil {
			if plan != nil {
				t.Errorf("%v: plan %v, want none", tc.left, plan)
			}
			continue
		}
		got := slices.Clone(tc.left)
		for _, m := range plan {
			if m[2] <= 0 || m[0] == m[1] {
				t.Errorf("%v: bad move %v", tc.left, m)
			}
			got[m[0]] -= m[2]
			got[m[1]] += m[2]
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: plan %v gives %v, want %v", tc.left, plan, got, tc.want)
		}
	}
}

// TestShardedHotBurst: one hot sale of 4 shards, two API nodes, many buyers
// at once; users with a limit of 2 who buy with several Idempotency-Keys, a
// quantity of 2, and the same key at once. Exactly the stock is sold, every
// unit (demand exceeds stock: none is stranded on a shard), each user within
// the limit, each key one order, and the log of all outboxes agrees.
func TestShardedHotBurst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	const (
		stock  = 300
		shards = 4
		users  = 1200
		limit  = 2
	)
	sale := f.shardedSale(t, stock, limit, shards, time.Minute)
	node2, err := commands.NewGate(commands.GateConfig{Clock: f.clock}, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*commands.Gate{f.gate, node2}

	type attempt struct {
		user, key string
		qty       int64
	}
	// Half the buyers share home shard 0, so it runs dry while the others
	// still sell: its buyers must pull.
	hot := homeUsers("hot", 0, shards, users/2)
	var attempts []attempt
	for i := range users {
		u := fmt.Sprintf("user%d", i)
		if i%2 == 0 {
			u = hot[i/2]
		}
		switch i % 4 {
		case 0: // one purchase and its retry
			attempts = append(attempts, attempt{u, "", 1}, attempt{u, "", 1})
		case 1: // three attempts, three keys: at most two orders
			attempts = append(attempts, attempt{u, "k1", 1}, attempt{u, "k2", 1}, attempt{u, "k3", 1})
		case 2: // two units at once, then one more: over the limit
			attempts = append(attempts, attempt{u, "a", 2}, attempt{u, "b", 1})
		case 3: // the same key three times at once
			attempts = append(attempts, attempt{u, "x", 1}, attempt{u, "x", 1}, attempt{u, "x", 1})
		}
	}
	rand.Shuffle(len(attempts), func(i, j int) { attempts[i], attempts[j] = attempts[j], attempts[i] })

	var (
		mu     sync.Mutex
		byKey  = map[string]map[string]bool{} // user|key → order ids answered
		placed = map[string]commands.Reservation{}
		held   = map[string]int64{}
		counts = map[string]int{}
	)
	work := make(chan attempt)
	var wg sync.WaitGroup
	for w := range 48 {
		wg.Go(func() {
			g := nodes[w%len(nodes)]
			for a := range work {
				r, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: a.user, IdempotencyKey: a.key, Quantity: a.qty})
				mu.Lock()
				switch {
				case err == nil:
					k := a.user + "|" + a.key
					if byKey[k] == nil {
						byKey[k] = map[string]bool{}
					}
					byKey[k][r.OrderID] = true
					if _, seen := placed[r.OrderID]; !seen {
						placed[r.OrderID] = r
						held[a.user] += r.Quantity
					}
					counts["ok"]++
				case errors.Is(err, domain.ErrSoldOut), errors.Is(err, domain.ErrInsufficientStock), errors.Is(err, domain.ErrLimitReached):
					counts[err.Error()]++
				default:
					t.Errorf("purchase %+v: %v", a, err)
				}
				mu.Unlock()
			}
		})
	}
	for _, a := range attempts {
		work <- a
	}
	close(work)
	wg.Wait()

	// Buyers of one unit until the sale says sold out: every unit sells.
	var mopped int
	for i := 0; ; i++ {
		r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprintf("late%d", i)})
		if errors.Is(err, domain.ErrSoldOut) {
			break
		}
		if err != nil {
			t.Fatalf("late buyer: %v", err)
		}
		placed[r.OrderID] = r
		held[fmt.Sprintf("late%d", i)] += r.Quantity
		mopped++
	}
	var sold int64
	for _, r := range placed {
		sold += r.Quantity
		if i, ok := domain.ShardOfOrder(r.OrderID); !ok || i >= shards {
			t.Errorf("order %s names no shard", r.OrderID)
		}
	}
	if sold != stock {
		t.Errorf("sold %d units in %d orders, want the whole stock %d", sold, len(placed), stock)
	}
	for k, ids := range byKey {
		if len(ids) != 1 {
			t.Errorf("%s answered with %d orders: %v", k, len(ids), ids)
		}
	}
	for u, n := range held {
		if n > limit {
			t.Errorf("user %s holds %d units, limit %d", u, n, limit)
		}
	}

	fd := f.fold(t) // fails on any violation, shard pools included
	s := fd.Sales[sale.ID]
	if s.ReservedQty != stock || s.Remaining() != 0 || len(fd.Orders) != len(placed) {
		t.Errorf("log: reserved %d remaining %d orders %d; want %d 0 %d", s.ReservedQty, s.Remaining(), len(fd.Orders), stock, len(placed))
	}
	for u, n := range held {
		if s.Buyers[u] != n {
			t.Errorf("log: %s holds %d, the buyers were answered %d", u, s.Buyers[u], n)
		}
	}
	c := checkGateMatchesLog(t, f.gate, fd, sale.ID)
	for i, sh := range c.Shards {
		if sh.Remaining != 0 {
			t.Errorf("shard %d has %d units stranded", i, sh.Remaining)
		}
	}
	view, err := f.gate.Sale(ctx, sale.ID)
	if err != nil || view.Remaining != 0 || view.State != commands.SaleSoldOut {
		t.Errorf("view %+v %v, want sold out", view, err)
	}
	if s.Moves == 0 {
		t.Error("no stock moved, though shard 0 had half the buyers")
	}
	t.Logf("%d orders, %d units by late buyers, %d moves between shards; answers %v", len(placed), mopped, s.Moves, counts)
}

// TestShardedPull walks the pull step by step: a buyer whose home shard is
// empty gets units moved from another shard, a partial pull still leaves the
// units where they were moved, a buyer at the limit moves nothing, and the
// sale is sold out only when every shard is empty.
func TestShardedPull(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale := f.shardedSale(t, 4, 2, 2, time.Minute) // 2 units per shard
	s0 := homeUsers("zero", 0, 2, 3)
	s1 := homeUsers("one", 1, 2, 2)
	buy := func(user, key string, qty int64) (commands.Reservation, error) {
		return f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: user, IdempotencyKey: key, Quantity: qty})
	}
	moves := func() int64 { return f.fold(t).Sales[sale.ID].Moves }

	a, err := buy(s0[0], "", 2) // shard 0 empties
	if err != nil {
		t.Fatal(err)
	}
	if i, _ := domain.ShardOfOrder(a.OrderID); i != 0 {
		t.Fatalf("order %s not on the buyer's home shard 0", a.OrderID)
	}
	b, err := buy(s0[1], "", 1) // pulls 1 from shard 1
	if err != nil {
		t.Fatalf("buyer on the empty shard: %v", err)
	}
	if i, _ := domain.ShardOfOrder(b.OrderID); i != 0 || moves() != 1 {
		t.Fatalf("order %s, %d moves; want shard 0 and one move", b.OrderID, moves())
	}
	// 1 unit left, on shard 1: a buyer of 2 on shard 0 pulls it and is
	// told insufficient; the unit stays on shard 0.
	if _, err := buy(s0[2], "", 2); !errors.Is(err, domain.ErrInsufficientStock) {
		t.Fatalf("buying 2 of 1 left: %v", err)
	}
	c := checkGateMatchesLog(t, f.gate, f.fold(t), sale.ID)
	if c.Shards[0].Remaining != 1 || c.Shards[1].Remaining != 0 {
		t.Fatalf("pools after the partial pull: %+v", c.Shards)
	}
	// A buyer at the limit is refused by the home shard before any pull.
	before := moves()
	if _, err := buy(s0[0], "again", 1); !errors.Is(err, domain.ErrLimitReached) {
		t.Fatalf("over the limit: %v", err)
	}
	if moves() != before {
		t.Error("a refused buyer moved stock")
	}
	// The last unit is on shard 0; a shard-1 buyer pulls it back.
	if _, err := buy(s1[0], "", 1); err != nil {
		t.Fatalf("last unit: %v", err)
	}
	if _, err := buy(s1[1], "", 1); !errors.Is(err, domain.ErrSoldOut) {
		t.Fatalf("after the last unit: %v", err)
	}
	if !f.gate.SoldOutFlag(sale.ID) {
		t.Error("the node does not know the sale is sold out")
	}
	// A retry is answered with its order, sold out or not.
	if r, err := buy(s0[0], "", 1); err != nil || r.OrderID != a.OrderID || !r.Replayed {
		t.Errorf("retry = %+v %v, want replay of %s", r, err, a.OrderID)
	}
	fd := f.fold(t)
	checkGateMatchesLog(t, f.gate, fd, sale.ID)
	if s := fd.Sales[sale.ID]; s.Remaining() != 0 || s.ReservedQty != 4 || s.Moves != 3 {
		t.Errorf("log: remaining %d reserved %d moves %d, want 0 4 3", s.Remaining(), s.ReservedQty, s.Moves)
	}
}

func TestShardedRebalance(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale := f.shardedSale(t, 40, 10, 4, time.Minute)
	// One buyer empties shard 0.
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: homeUsers("u", 0, 4, 1)[0], Quantity: 10}); err != nil {
		t.Fatal(err)
	}
	res, err := f.gate.Rebalance(ctx, sale.ID)
	if err != nil || res.Units != 7 {
		t.Fatalf("rebalance = %+v, %v; want 7 units moved to the empty shard", res, err)
	}
	c := checkGateMatchesLog(t, f.gate, f.fold(t), sale.ID)
	var pools []int64
	for _, sh := range c.Shards {
		pools = append(pools, sh.Remaining)
	}
	if slices.Min(pools) < 7 || slices.Max(pools) > 8 || c.Remaining != 30 {
		t.Errorf("pools after rebalance %v (sum %d), want 7-8 each, 30", pools, c.Remaining)
	}
	if res, err := f.gate.Rebalance(ctx, sale.ID); err != nil || res.Moves != 0 {
		t.Errorf("second rebalance = %+v, %v; want nothing to do", res, err)
	}
	// The sweeper rebalances too: empty shard 2.
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: homeUsers("v", 2, 4, 1)[0], Quantity: pools[2]}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.gate.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	c = checkGateMatchesLog(t, f.gate, f.fold(t), sale.ID)
	for i, sh := range c.Shards {
		if sh.Remaining == 0 {
			t.Errorf("shard %d still dry after the sweep: %+v", i, c.Shards)
		}
	}
	// An unsharded sale has nothing to rebalance.
	plain := f.sale(t, 5, 1, time.Minute)
	if res, err := f.gate.Rebalance(ctx, plain.ID); err != nil || res.Moves != 0 {
		t.Errorf("rebalance of an unsharded sale = %+v, %v", res, err)
	}
}

// TestShardedMoveRecovery: a mover dies between the debit and the credit.
// The units are counted where the log puts them (in flight to the
// recipient), the sweeper credits them after MoveRecoverAfter, and a credit
// the mover sends late is refused as a duplicate.
func TestShardedMoveRecovery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale := f.shardedSale(t, 9, 1, 3, time.Hour)
	id, took, err := f.gate.MoveOutOnly(ctx, sale.ID, 0, 1, 2)
	if err != nil || took != 2 {
		t.Fatalf("move out = %s %d %v", id, took, err)
	}
	c := checkGateMatchesLog(t, f.gate, f.fold(t), sale.ID)
	if c.Remaining != 9 || c.Shards[1].InFlight != 2 || c.Shards[1].Remaining != 5 {
		t.Fatalf("counters with a move in flight: %+v", c)
	}
	if _, err := f.gate.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if c := checkGateMatchesLog(t, f.gate, f.fold(t), sale.ID); c.Shards[1].InFlight != 2 {
		t.Fatalf("a fresh move was recovered before MoveRecoverAfter: %+v", c.Shards)
	}
	f.clock.Advance(commands.MoveRecoverAfter)
	if _, err := f.gate.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	c = checkGateMatchesLog(t, f.gate, f.fold(t), sale.ID)
	if c.Shards[1].InFlight != 0 || c.Shards[1].Remaining != 5 || c.Shards[1].MovedIn != 2 {
		t.Fatalf("after recovery: %+v", c.Shards)
	}
	if n, err := f.rdb.Exists(ctx, "seckill:{"+commands.ShardTag(sale.ID, 0, 3)+"}:moves").Result(); err != nil || n != 0 {
		t.Errorf("pending moves left: %d %v", n, err)
	}
	// The mover wakes up and credits: nothing changes.
	if err := f.gate.CreditOnly(ctx, sale.ID, 1, id, 2); err != nil {
		t.Fatalf("late credit: %v", err)
	}
	if c := checkGateMatchesLog(t, f.gate, f.fold(t), sale.ID); c.Shards[1].Remaining != 5 || c.Remaining != 9 {
		t.Fatalf("a late credit changed the pools: %+v", c)
	}
}

// TestShardedPayExpireEnd: payments and expiries work on the order's shard,
// expired units return to that shard's pool, and the end collects every
// shard, a move in flight included, into SaleEnded.
func TestShardedPayExpireEnd(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale := f.shardedSale(t, 12, 1, 3, time.Minute)
	var orders []commands.Reservation
	var buyers []string
	for shard := range 3 {
		for _, u := range homeUsers(fmt.Sprintf("s%d-", shard), shard, 3, 2) {
			r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: u})
			if err != nil {
				t.Fatal(err)
			}
			orders, buyers = append(orders, r), append(buyers, u)
		}
	}
	// Pay the first order of each shard; the others expire.
	for j := 0; j < len(orders); j += 2 {
		if _, err := f.gate.Pay(ctx, commands.Pay{OrderID: orders[j].OrderID, UserID: buyers[j], PaymentRef: "p" + buyers[j]}); err != nil {
			t.Fatalf("pay %s: %v", orders[j].OrderID, err)
		}
		o, err := f.gate.Order(ctx, orders[j].OrderID)
		if err != nil || o.Status != domain.StatusPaid || o.UserID != buyers[j] {
			t.Fatalf("order after pay: %+v %v", o, err)
		}
	}
	f.clock.Advance(2 * time.Minute)
	if res, err := f.gate.Sweep(ctx); err != nil || res.Expired != 3 {
		t.Fatalf("sweep = %+v, %v; want 3 expired", res, err)
	}
	c := checkGateMatchesLog(t, f.gate, f.fold(t), sale.ID)
	for i, sh := range c.Shards {
		if sh.Remaining != 3 {
			t.Errorf("shard %d pool %d, want 4 - 1 paid = 3", i, sh.Remaining)
		}
	}
	// A reservation that outlives the end, and a move in flight at the end.
	late, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if _, took, err := f.gate.MoveOutOnly(ctx, sale.ID, 2, 0, 1); err != nil || took != 1 {
		t.Fatalf("move out: %d %v", took, err)
	}
	ended, err := f.gate.EndSale(ctx, commands.EndSale{SaleID: sale.ID})
	if err != nil {
		t.Fatal(err)
	}
	if ended.State != commands.SaleEnded || ended.Unsold != 8 || ended.Remaining != 0 {
		t.Errorf("ended sale = %+v, want ended with 8 unsold", ended)
	}
	if again, err := f.gate.EndSale(ctx, commands.EndSale{SaleID: sale.ID}); err != nil || again.Unsold != 8 {
		t.Errorf("ending again = %+v, %v", again, err)
	}
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "after"}); !errors.Is(err, domain.ErrEnded) {
		t.Errorf("purchase after the end: %v", err)
	}
	f.clock.Advance(2 * time.Minute)
	if res, err := f.gate.Sweep(ctx); err != nil || res.Expired != 1 {
		t.Fatalf("sweep after the end = %+v, %v", res, err)
	}
	fd := f.fold(t)
	s := fd.Sales[sale.ID]
	if !s.Ended || s.Unsold != 8 || s.Remaining() != 0 || len(s.ShardsUnsold) != 3 {
		t.Errorf("log: ended %v unsold %d %v remaining %d", s.Ended, s.Unsold, s.ShardsUnsold, s.Remaining())
	}
	if o := fd.Orders[late.OrderID]; o.Status != domain.StatusExpired {
		t.Errorf("late order %+v", o)
	}
	// Expired after the end: to regular inventory, not the closed pool.
	// Everything not paid went back: to the pool (and then, unsold, to
	// inventory) or straight to inventory.
	if back := s.Released() - s.PoolQty; back != 12-3 || s.PaidQty != 3 || s.PoolQty != 3 {
		t.Errorf("log: released %d (%d to the pool) paid %d, want 9 back, 3 via the pool, 3 paid", s.Released(), s.PoolQty, s.PaidQty)
	}
	checkGateMatchesLog(t, f.gate, fd, sale.ID)
}

// TestShardedEndResumes: a node dies half way through ending a sale. Closed
// shards refuse, open ones still sell, and the sweeper finishes the end with
// the reason it began with.
func TestShardedEndResumes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale := f.shardedSale(t, 6, 1, 3, time.Minute)
	if err := f.gate.BeginEndOnly(ctx, sale.ID, domain.EndReasonEarly, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: homeUsers("a", 0, 3, 1)[0]}); !errors.Is(err, domain.ErrEnded) {
		t.Errorf("buyer on a closed shard: %v", err)
	}
	// This node now answers ended from memory (a closed shard means the
	// sale is ending); another node that has not heard still sells from the
	// open shards until they close.
	other, err := commands.NewGate(commands.GateConfig{Clock: f.clock}, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: homeUsers("b", 1, 3, 1)[0]}); err != nil {
		t.Errorf("buyer on a shard not closed yet: %v", err)
	}
	if res, err := f.gate.Sweep(ctx); err != nil || res.Ended != 1 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	fd := f.fold(t)
	if s := fd.Sales[sale.ID]; !s.Ended || s.EndReason != domain.EndReasonEarly || s.Unsold != 5 {
		t.Errorf("log: %+v", s)
	}
	checkGateMatchesLog(t, f.gate, fd, sale.ID)
}

func TestShardedBlacklist(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if err := f.gate.Block(ctx, "early"); err != nil {
		t.Fatal(err)
	}
	sale := f.shardedSale(t, 8, 1, 4, time.Minute)
	if err := f.gate.Block(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	// A node whose memory has not heard of either: the home shard's copy
	// refuses them.
	fresh, err := commands.NewGate(commands.GateConfig{Clock: f.clock}, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"early", "later"} {
		if _, err := fresh.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: u}); !errors.Is(err, domain.ErrBlocked) {
			t.Errorf("%s: %v, want blocked", u, err)
		}
	}
	if err := f.gate.Unblock(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "later"}); err != nil {
		t.Errorf("unblocked: %v", err)
	}
}

// TestShardedRestore: Redis is lost; the gate restored from the log is the
// gate it was, key by key, for a sharded sale next to an unsharded one, and
// keeps answering retries, limits and purchases.
func TestShardedRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	hot := f.shardedSale(t, 12, 2, 3, time.Minute)
	plain := f.sale(t, 5, 1, time.Minute)
	done := f.shardedSale(t, 6, 1, 2, time.Minute)
	buy := func(sale, user, key string, q int64) commands.Reservation {
		t.Helper()
		r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale, UserID: user, IdempotencyKey: key, Quantity: q})
		if err != nil {
			t.Fatalf("purchase by %s: %v", user, err)
		}
		return r
	}
	s0 := homeUsers("h", 0, 3, 4)
	a := buy(hot.ID, s0[0], "", 2)
	buy(hot.ID, s0[1], "k1", 2) // shard 0 is empty now
	buy(hot.ID, s0[2], "k1", 1) // pulls
	if _, err := f.gate.Pay(ctx, commands.Pay{OrderID: a.OrderID, UserID: s0[0], PaymentRef: "pay"}); err != nil {
		t.Fatal(err)
	}
	buy(plain.ID, "pat", "", 1)
	buy(done.ID, "dan", "", 1)
	f.clock.Advance(2 * time.Minute)
	if _, err := f.gate.Sweep(ctx); err != nil { // s0[1] and s0[2] expire to shard 0
		t.Fatal(err)
	}
	buy(hot.ID, s0[3], "", 1)
	if _, err := f.gate.Rebalance(ctx, hot.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.gate.EndSale(ctx, commands.EndSale{SaleID: done.ID}); err != nil {
		t.Fatal(err)
	}
	if err := f.gate.Block(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}

	before := snapshot(t, f.rdb)
	fd := domain.NewFold()
	foldInto(t, f, fd)
	if v := fd.Violations(); len(v) > 0 {
		t.Fatal(v)
	}
	if err := f.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.SAdd(ctx, f.gate.Keyspace().Blacklist(), "mallory").Err(); err != nil {
		t.Fatal(err) // the blacklist is not in the log; it survives as the gate's own
	}
	rep, err := f.gate.Restore(ctx, fd, commands.RestoreOptions{BatchSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) != 0 || len(rep.Sales) != 3 {
		t.Errorf("report %+v", rep)
	}
	if diff := mapDiff(before, snapshot(t, f.rdb)); diff != "" {
		t.Fatalf("restored gate differs (-before +after):\n%s", diff)
	}
	g, err := commands.NewGate(commands.GateConfig{Clock: f.clock, SaleCacheTTL: time.Nanosecond}, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := g.Purchase(ctx, commands.Purchase{SaleID: hot.ID, UserID: s0[0]}); err != nil || r.OrderID != a.OrderID {
		t.Errorf("retry after restore = %+v %v, want %s", r, err, a.OrderID)
	}
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: hot.ID, UserID: s0[0], IdempotencyKey: "more"}); !errors.Is(err, domain.ErrLimitReached) {
		t.Errorf("over the limit after restore: %v", err)
	}
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: hot.ID, UserID: "newcomer"}); err != nil {
		t.Errorf("purchase after restore: %v", err)
	}
	// Forcing a restore over the live gate rewrites the same state.
	f.gate = g
	fd2 := domain.NewFold()
	foldInto(t, f, fd2)
	trimOutboxes(t, f)
	snap := snapshot(t, f.rdb)
	if _, err := g.Restore(ctx, fd2, commands.RestoreOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if diff := mapDiff(snap, snapshot(t, f.rdb)); diff != "" {
		t.Fatalf("forced restore differs (-before +after):\n%s", diff)
	}
}

// TestShardedUserInterval: the per-user interval lives on the home shard, so
// it holds across nodes, and a pull does not count as a second attempt.
func TestShardedUserInterval(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sale, err := f.gate.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "hot", Stock: 2, PriceCents: 1, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: 2, PayWithinS: 60,
		},
		Shards: 2, Protections: domain.Protections{UserIntervalMS: 1000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	us := homeUsers("r", 0, 2, 2)
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: us[0], IdempotencyKey: "1"}); err != nil {
		t.Fatal(err)
	}
	// Another node, same user, inside the interval: refused by the script.
	other, err := commands.NewGate(commands.GateConfig{Clock: f.clock}, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: us[0], IdempotencyKey: "2"}); !errors.Is(err, domain.ErrRateLimited) {
		t.Errorf("second attempt inside the interval: %v", err)
	}
	// Shard 0 is empty: the next buyer's purchase pulls and is not refused
	// by its own first call.
	r, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: us[1]})
	if err != nil {
		t.Fatalf("a purchase that pulls: %v", err)
	}
	if i, _ := domain.ShardOfOrder(r.OrderID); i != 0 {
		t.Errorf("order %s off the home shard", r.OrderID)
	}
	if s := f.fold(t).Sales[sale.ID]; s.Moves != 1 || s.Remaining() != 0 {
		t.Errorf("log: %d moves, %d remaining", s.Moves, s.Remaining())
	}
}

// TestShardedEndDuringBurst: the end races buyers who pull, a rebalancer
// and a second node ending the same sale. Whatever interleaving happens,
// every unit is sold or unsold exactly once, no shard keeps units after the
// end, and the gate matches the log.
func TestShardedEndDuringBurst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	const stock, shards = 400, 4
	sale := f.shardedSale(t, stock, 1, shards, time.Minute)
	node2, err := commands.NewGate(commands.GateConfig{Clock: f.clock}, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	hot := homeUsers("e", 1, shards, 2000) // one shard's buyers: they pull
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sold int64
		next int
	)
	stop := make(chan struct{})
	for w := range 24 {
		wg.Go(func() {
			g := []*commands.Gate{f.gate, node2}[w%2]
			for {
				mu.Lock()
				if next == len(hot) {
					mu.Unlock()
					return
				}
				u := hot[next]
				next++
				mu.Unlock()
				r, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: u})
				switch {
				case err == nil:
					mu.Lock()
					sold += r.Quantity
					mu.Unlock()
				case errors.Is(err, domain.ErrEnded), errors.Is(err, domain.ErrSoldOut):
					return
				default:
					t.Errorf("purchase: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := node2.Rebalance(ctx, sale.ID); err != nil {
				t.Errorf("rebalance: %v", err)
				return
			}
		}
	})
	// End from both nodes once some units are gone.
	for {
		c, _, err := f.gate.SaleCounters(ctx, sale.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Reserved >= stock/4 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var ends sync.WaitGroup
	for _, g := range []*commands.Gate{f.gate, node2} {
		ends.Go(func() {
			if _, err := g.EndSale(ctx, commands.EndSale{SaleID: sale.ID}); err != nil {
				t.Errorf("end: %v", err)
			}
		})
	}
	ends.Wait()
	close(stop)
	wg.Wait()
	fd := f.fold(t)
	s := fd.Sales[sale.ID]
	if !s.Ended || s.ReservedQty != sold || sold+s.Unsold != stock {
		t.Errorf("log: ended %v reserved %d unsold %d; buyers were sold %d of %d", s.Ended, s.ReservedQty, s.Unsold, sold, stock)
	}
	checkGateMatchesLog(t, f.gate, fd, sale.ID)
	t.Logf("sold %d, unsold %d %v, %d moves", sold, s.Unsold, s.ShardsUnsold, s.Moves)
}
