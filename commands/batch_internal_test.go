package commands

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/testenv"
)

// op is one command of a random schedule: a purchase or a payment.
type op struct {
	purchase *purchaseReq
	pay      *payReq
}

// TestBatchedEqualsOneAtATime drives the same random schedule of purchases
// and payments through two gates on one Redis (two prefixes): one decides
// every command in its own script call, the other in batches of random size.
// Every answer, every key and every event must be the same: batching is
// group commit, not a new semantics. The sale has a per-user limit, a
// per-user interval, a staged release and a small stock, and the schedule
// has retries with the same key, other users' payments and late payments.
func TestBatchedEqualsOneAtATime(t *testing.T) {
	rdb := testenv.Redis(t)
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { compareBatched(t, rdb, seed) })
	}
}

func compareBatched(t *testing.T, rdb *redis.Client, seed uint64) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(seed, 42))
	spec := domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: 40, PriceCents: 1999, StartsAt: t0.Add(6 * time.Second),
			EndsAt: t0.Add(20 * time.Minute), PerUserLimit: 3, PayWithinS: 60,
		},
		Protections: domain.Protections{UserIntervalMS: 100_000, ReleaseStep: 5, ReleaseIntervalMS: 10_000},
	}.WithDefaults()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	saleID := fmt.Sprintf("eq%d", seed)
	gates := make([]*Gate, 2)
	for i, pf := range []string{fmt.Sprintf("one%d:", seed), fmt.Sprintf("many%d:", seed)} {
		g, err := NewGate(GateConfig{Prefix: pf, Clock: NewManualClock(t0)}, rdb)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.createSale(ctx, saleID, spec); err != nil {
			t.Fatal(err)
		}
		gates[i] = g
	}
	ops := randomSchedule(t, rng, saleID, t0)
	answers := make([][]reply, 2)
	for gi, g := range gates {
		lay, err := g.layoutOf(ctx, saleID)
		if err != nil {
			t.Fatal(err)
		}
		sh := lay.shards[0]
		for i := 0; i < len(ops); {
			n := 1
			if gi == 1 {
				n = 1 + rng.IntN(24)
			}
			// A batch holds commands of one kind, as the shard's two batchers do.
			j := i + 1
			for j < len(ops) && j-i < n && (ops[j].pay == nil) == (ops[i].pay == nil) {
				j++
			}
			answers[gi] = append(answers[gi], runBatch(t, g, sh, ops[i:j])...)
			i = j
		}
	}
	if len(answers[0]) != len(ops) || len(answers[1]) != len(ops) {
		t.Fatalf("answers %d and %d for %d commands", len(answers[0]), len(answers[1]), len(ops))
	}
	counts := map[string]int{}
	for i := range ops {
		if !reflect.DeepEqual(answers[0][i], answers[1][i]) {
			t.Fatalf("command %d: one at a time %v, batched %v", i, answers[0][i], answers[1][i])
		}
		counts[answers[0][i].str(0)]++
	}
	// The schedule must reach every kind of answer, or the comparison proves little.
	for _, code := range []string{"reserved", "existing", "rate_limited", "limit_reached", "sold_out", "not_yet_released", "not_started", "paid", "not_found", "expired", "already_paid"} {
		if counts[code] == 0 {
			t.Errorf("no %s answer in the schedule: %v", code, counts)
		}
	}
	a, b := snapshotPrefix(t, rdb, gates[0].cfg.Prefix), snapshotPrefix(t, rdb, gates[1].cfg.Prefix)
	if !reflect.DeepEqual(a, b) {
		for k := range a {
			if a[k] != b[k] {
				t.Errorf("key %s: one at a time %q, batched %q", k, a[k], b[k])
			}
		}
		t.Fatalf("the gates differ (%d and %d keys)", len(a), len(b))
	}
}

// randomSchedule makes 400 purchases and payments, the clock moving on by
// up to 3 s between them.
func randomSchedule(t *testing.T, rng *rand.Rand, saleID string, t0 time.Time) []op {
	var ops []op
	var placed []struct{ order, user string }
	now := t0
	for i := range 400 {
		now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
		user := fmt.Sprintf("u%d", rng.IntN(25))
		if len(placed) > 0 && rng.IntN(4) == 0 {
			p := placed[rng.IntN(len(placed))]
			if rng.IntN(8) == 0 {
				p.user = user // someone else's order
			}
			ref := fmt.Sprintf("ref%d", rng.IntN(2))
			req, err := newPayReq(saleID, p.order, p.user, ref, now, domain.Metadata{})
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, op{pay: req})
			continue
		}
		qty := int64(1 + rng.IntN(2))
		orderID := domain.ShardOrderID(saleID, 0, fmt.Sprintf("o%04d", i))
		payBy := now.Add(time.Minute)
		key := strconv.Itoa(rng.IntN(3))
		cfg := SaleConfig{ID: saleID, SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{PriceCents: 1999}}}
		cmd := Purchase{SaleID: saleID, UserID: user, Quantity: qty, IdempotencyKey: key}
		reserved, placedEnv, err := placementEvents(cfg, cmd, orderID, 1999*qty, now, payBy, domain.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op{purchase: newPurchaseReq(ms(now), user, idemField(user, key), qty, orderID, ms(payBy), 1999*qty, reserved, placedEnv)})
		placed = append(placed, struct{ order, user string }{orderID, user})
	}
	return ops
}

// runBatch decides ops (all of one kind) in one script call and returns the answers.
func runBatch(t *testing.T, g *Gate, sh *shard, ops []op) []reply {
	t.Helper()
	out := make([]reply, len(ops))
	if ops[0].pay != nil {
		batch := make([]*payReq, len(ops))
		for i, o := range ops {
			batch[i] = &payReq{args: o.pay.args}
		}
		g.execPays(sh, batch)
		for i, r := range batch {
			if r.err != nil {
				t.Fatal(r.err)
			}
			out[i] = r.reply
		}
		return out
	}
	batch := make([]*purchaseReq, len(ops))
	for i, o := range ops {
		batch[i] = &purchaseReq{args: o.purchase.args}
	}
	g.execPurchases(sh, batch)
	for i, r := range batch {
		if r.err != nil {
			t.Fatal(r.err)
		}
		out[i] = r.reply
	}
	return out
}

// snapshotPrefix reads every key under prefix, without it: hashes and sets
// sorted, sorted sets with scores, streams as their events in order (entry
// boundaries and ids left out: a batch is one entry), strings as they are.
func snapshotPrefix(t *testing.T, rdb *redis.Client, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		var v string
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "hash":
			h := rdb.HGetAll(ctx, k).Val()
			var kv []string
			for f, x := range h {
				kv = append(kv, f+"="+x)
			}
			slices.Sort(kv)
			v = strings.Join(kv, ",")
		case "set":
			m := rdb.SMembers(ctx, k).Val()
			slices.Sort(m)
			v = strings.Join(m, ",")
		case "zset":
			for _, z := range rdb.ZRangeWithScores(ctx, k, 0, -1).Val() {
				v += fmt.Sprintf("%v:%v,", z.Member, z.Score)
			}
		case "stream":
			for _, e := range rdb.XRange(ctx, k, "-", "+").Val() {
				for i := 1; i <= len(e.Values); i++ {
					v += e.Values[strconv.Itoa(i)].(string) + "\n"
				}
			}
		case "string":
			v = rdb.Get(ctx, k).Val()
		default:
			t.Fatalf("key %s: type %s", k, typ)
		}
		out[strings.TrimPrefix(k, prefix)] = strings.ReplaceAll(v, prefix, "")
	}
	return out
}
