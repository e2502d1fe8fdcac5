package domain_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
)

func TestShardOfOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id    string
		shard int
		ok    bool
	}{
		{"sale1-abcdefg", 0, false}, // unsharded, as before
		{"sale1-3_abcdefg", 3, true},
		{"sale1-63_x", 63, true},
		{"sale1-64_x", 0, false}, // beyond MaxShards
		{"sale1-03_x", 0, false}, // not canonical
		{"sale1-_x", 0, false},
		{"sale1-mv_x", 0, false}, // a move, not an order
		{"nodash", 0, false},
	} {
		got, ok := domain.ShardOfOrder(tc.id)
		if got != tc.shard || ok != tc.ok {
			t.Errorf("ShardOfOrder(%q) = %d %v, want %d %v", tc.id, got, ok, tc.shard, tc.ok)
		}
	}
	id := domain.ShardOrderID("sale1", 7, "suffix")
	if s, ok := domain.SaleOfOrder(id); !ok || s != "sale1" || !domain.ValidID(id) {
		t.Errorf("order id %q: sale %q %v, valid %v", id, s, ok, domain.ValidID(id))
	}
	if s, ok := domain.SaleOfOrder(domain.MoveID("sale1", "x")); !ok || s != "sale1" {
		t.Errorf("move id's sale = %q %v", s, ok)
	}
}

func TestHomeShardAndAllocation(t *testing.T) {
	t.Parallel()
	// Pinned: a live sale's users must keep their home shard across builds.
	if got := domain.HomeShard("alice", 4); got != 3 {
		t.Errorf("HomeShard(alice, 4) = %d; changing it moves every live user", got)
	}
	if got := domain.HomeShard("alice", 1); got != 0 {
		t.Errorf("HomeShard with one shard = %d", got)
	}
	counts := make([]int, 4)
	for i := range 4000 {
		counts[domain.HomeShard("user"+itoa(i), 4)]++
	}
	if slices.Min(counts) < 850 {
		t.Errorf("home shards uneven: %v", counts)
	}
	if got := domain.ShardAllocation(10, 4); !slices.Equal(got, []int64{3, 3, 2, 2}) {
		t.Errorf("allocation of 10 over 4 = %v", got)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// shardedLog builds the events of a sharded sale for the fold tests.
type shardedLog struct {
	t    *testing.T
	fold *domain.Fold
	at   time.Time
}

func (l *shardedLog) apply(evs ...domain.Event) {
	l.t.Helper()
	for _, ev := range evs {
		raw, err := domain.Encode(ev, l.at)
		if err != nil {
			l.t.Fatal(err)
		}
		env, dec, err := domain.Decode(raw)
		if err != nil {
			l.t.Fatal(err)
		}
		l.fold.Apply(env, dec)
	}
}

func (l *shardedLog) buy(sale, user string, shard int, qty int64) string {
	id := domain.ShardOrderID(sale, shard, user)
	l.apply(domain.StockReserved{SaleID: sale, OrderID: id, UserID: user, Quantity: qty},
		domain.OrderPlaced{OrderID: id, SaleID: sale, UserID: user, Quantity: qty, PayBy: l.at.Add(time.Minute)})
	return id
}

func TestFoldShardedSale(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	created := domain.SaleCreated{SaleID: "s", SaleSpec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "x", Stock: 4, StartsAt: t0, EndsAt: t0.Add(time.Hour), PerUserLimit: 2,
			PayWithinS: 60, Currency: "CNY",
		},
		Shards: 2,
	}}
	// Users by home shard of 2.
	var home [2][]string
	for i := 0; len(home[0]) < 3 || len(home[1]) < 3; i++ {
		u := "u" + itoa(i)
		home[domain.HomeShard(u, 2)] = append(home[domain.HomeShard(u, 2)], u)
	}
	move := func(id string, from, to, q int64) domain.StockMoved {
		return domain.StockMoved{SaleID: "s", MoveID: domain.MoveID("s", id), From: from, To: to, Quantity: q}
	}
	for _, tc := range []struct {
		name string
		run  func(l *shardedLog)
		want []string // substrings of the violations, in order; none: sound
	}{
		{"sound: pull, expiry to the pool, end", func(l *shardedLog) {
			l.buy("s", home[0][0], 0, 2) // shard 0 (2 units) empty
			l.apply(move("m1", 1, 0, 1))
			o := l.buy("s", home[0][1], 0, 1)
			l.apply(domain.OrderExpired{OrderID: o, SaleID: "s", UserID: home[0][1], Quantity: 1},
				domain.StockReleased{SaleID: "s", OrderID: o, Quantity: 1, ToPool: true},
				domain.SaleEnded{SaleID: "s", Unsold: 2, Reason: domain.EndReasonEarly, ShardsUnsold: []int64{1, 1}})
		}, nil},
		{"order off its user's home shard", func(l *shardedLog) {
			l.buy("s", home[1][0], 0, 1)
		}, []string{"home shard is 1"}},
		{"order id without a shard", func(l *shardedLog) {
			l.apply(domain.StockReserved{SaleID: "s", OrderID: "s-plain", UserID: "x", Quantity: 1},
				domain.OrderPlaced{OrderID: "s-plain", SaleID: "s", UserID: "x", Quantity: 1})
		}, []string{"names none"}},
		{"a shard overdrawn by a move", func(l *shardedLog) {
			l.apply(move("m1", 1, 0, 3))
		}, []string{"shard 1 pool -1 < 0"}},
		{"a shard overdrawn by purchases", func(l *shardedLog) {
			l.buy("s", home[0][0], 0, 2)
			l.buy("s", home[0][1], 0, 1)
		}, []string{"shard 0 pool -1 < 0"}},
		{"units left in a shard after the end", func(l *shardedLog) {
			l.apply(domain.SaleEnded{SaleID: "s", Unsold: 3, Reason: domain.EndReasonEarly, ShardsUnsold: []int64{2, 1}})
		}, []string{"shard 1 holds 1 units after the end"}},
		{"shards_unsold not adding up", func(l *shardedLog) {
			l.apply(domain.SaleEnded{SaleID: "s", Unsold: 4, Reason: domain.EndReasonEarly, ShardsUnsold: []int64{2, 2, 0}})
		}, []string{"shards_unsold [2 2 0]", "events of shard 2"}},
		{"a move to itself", func(l *shardedLog) {
			l.apply(move("m1", 1, 1, 1))
		}, []string{"from shard 1 to 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &shardedLog{t: t, fold: domain.NewFold(), at: t0}
			l.apply(created)
			tc.run(l)
			got := l.fold.Violations()
			if len(got) != len(tc.want) {
				t.Fatalf("violations %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %q, want it to say %q", got[i], w)
				}
			}
			if tc.want != nil {
				return
			}
			s := l.fold.Sales["s"]
			var sum int64
			for i := range 2 {
				sum += s.ShardRemaining(i)
			}
			if sum != s.Remaining() {
				t.Errorf("shards sum to %d, the sale's remaining is %d", sum, s.Remaining())
			}
		})
	}
}
