package domain

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Sharded stock (docs/sharding.md). A sale created with Shards > 1 splits its
// pool over that many shards, each in a Redis slot of its own, so one hot sale
// is not bounded by one Redis core. Every user has a HOME shard that holds all
// of their state in the sale (idempotency keys, units held, rate limit) and all
// of their orders, so the per-user limit and the retries stay exact on one
// shard; what moves between shards is stock, never users, and every move is
// recorded as StockMoved.

// MaxShards bounds the shards of one sale. More shards than Redis masters buy
// nothing, and the sold-out check of a sharded sale visits every shard.
const MaxShards = 64

// TypeStockMoved is the event type of StockMoved (see events.go).
const TypeStockMoved = "StockMoved"

// StockMoved moves Quantity units of a sharded sale's pool from shard From to
// shard To; aggregate: the move (MoveID). It is written with the debit of the
// donor shard, in the donor's outbox, in the same script; the credit of the
// recipient follows and is applied exactly once (the recipient remembers the
// move ids it applied), so the log counts the units in To from here on. Moves
// never change how many units the sale has, only where they are: the sum of
// the shards' pools is the sale's Remaining before and after.
type StockMoved struct {
	SaleID   string `json:"sale_id"`
	MoveID   string `json:"move_id"`
	From     int64  `json:"from"`
	To       int64  `json:"to"`
	Quantity int64  `json:"quantity"`
}

// EventType implements Event.
func (StockMoved) EventType() string { return TypeStockMoved }

// AggregateID implements Event: the move, so moves of one hot sale spread
// over partitions like its orders do.
func (e StockMoved) AggregateID() string { return e.MoveID }

// ShardCount is the number of shards of a sale recorded with shards (0, from
// sales recorded before sharding existed or created without it, means 1).
func ShardCount(shards int64) int {
	if shards < 1 {
		return 1
	}
	return int(shards)
}

// HomeShard is the shard of a sale of shards shards that owns user: their
// idempotency keys, the units they hold and their orders. FNV-1a 32 of the
// user id modulo shards; every node, the restore and the audit compute the
// same, so it must never change for a live sale.
func HomeShard(user string, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	return int(h.Sum32() % uint32(shards))
}

// ShardAllocation is how a sale's stock is split over its shards when the
// sale opens: evenly, the first stock%shards shards one unit more.
func ShardAllocation(stock int64, shards int) []int64 {
	if shards < 1 {
		shards = 1
	}
	out := make([]int64, shards)
	for i := range out {
		out[i] = ShardInitial(stock, shards, i)
	}
	return out
}

// ShardInitial is shard i's part of ShardAllocation.
func ShardInitial(stock int64, shards, i int) int64 {
	n := stock / int64(shards)
	if int64(i) < stock%int64(shards) {
		n++
	}
	return n
}

// ShardOrderID is the id of an order placed on shard of a sale:
// "<saleID>-<shard>_<suffix>". SaleOfOrder still reads the sale from it (the
// last '-'), and ShardOfOrder the shard, so any node finds the order's keys
// from its id alone. Orders of classic sales placed before every order named
// its shard ("<saleID>-<suffix>", suffix without '_') are shard 0's.
func ShardOrderID(saleID string, shard int, suffix string) string {
	return saleID + "-" + strconv.Itoa(shard) + "_" + suffix
}

// ShardOfOrder returns the shard inside an order id made by ShardOrderID; ok
// is false for an order of an unsharded sale.
func ShardOfOrder(orderID string) (int, bool) {
	i := strings.LastIndexByte(orderID, '-')
	if i < 0 {
		return 0, false
	}
	num, _, found := strings.Cut(orderID[i+1:], "_")
	if !found || num == "" || len(num) > 2 {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n >= MaxShards || strconv.Itoa(n) != num {
		return 0, false
	}
	return n, true
}

// MoveID is the id of a stock move of sale: "<saleID>-mv_<suffix>", a shape
// no order id takes.
func MoveID(saleID, suffix string) string { return saleID + "-mv_" + suffix }

// ShardState is one shard of a sharded sale as the log tells it. Orders count
// on the shard in their id (ShardOfOrder); moves on From and To.
type ShardState struct {
	ReservedQty int64
	PaidQty     int64
	ExpiredQty  int64
	ReleasedQty int64 // units released by expiry, to the pool or to regular inventory
	PoolQty     int64 // units released back into this shard's pool
	Orders      int64
	PaidOrders  int64
	PaidCents   int64
	MovedIn     int64
	MovedOut    int64
	Unsold      int64 // this shard's pool at the end (SaleEnded.ShardsUnsold)
	// MovesIn are the moves into this shard by id, with their quantity: the
	// gate's record of credits applied (restore writes it back, so a credit
	// replayed by a node that outlived the Redis loss is still refused).
	MovesIn map[string]int64
}

// Shard returns shard i's state, creating it.
func (s *SaleState) Shard(i int) *ShardState {
	if s.ByShard == nil {
		s.ByShard = map[int]*ShardState{}
	}
	sh, ok := s.ByShard[i]
	if !ok {
		sh = &ShardState{MovesIn: map[string]int64{}}
		s.ByShard[i] = sh
	}
	return sh
}

// ShardRemaining is shard i's purchasable pool: its initial allocation, less
// what it reserved, plus what expiry returned to it, plus moves in, less moves
// out, less its unsold pool at the end. The sum over the shards is Remaining.
func (s *SaleState) ShardRemaining(i int) int64 {
	n := ShardInitial(s.Stock, ShardCount(s.Shards), i)
	if sh := s.ByShard[i]; sh != nil {
		n += -sh.ReservedQty + sh.PoolQty + sh.MovedIn - sh.MovedOut - sh.Unsold
	}
	return n
}

// applyShard adds an event to its shard's counters. It is called for every
// event after the sale-level fold. Every sale has shards: a classic sale
// one, whose orders' ids may name none (orders placed before every order id
// named its shard are shard 0's).
func (f *Fold) applyShard(ev Event) {
	order := func(id, sale string) *ShardState {
		i, _ := ShardOfOrder(id)
		return f.sale(sale).Shard(i)
	}
	switch e := ev.(type) {
	case StockReserved:
		if sh := order(e.OrderID, e.SaleID); sh != nil {
			sh.ReservedQty += e.Quantity
		}
	case OrderPlaced:
		if sh := order(e.OrderID, e.SaleID); sh != nil {
			sh.Orders++
		}
	case OrderPaid:
		if sh := order(e.OrderID, e.SaleID); sh != nil {
			sh.PaidQty += e.Quantity
			sh.PaidOrders++
			sh.PaidCents += e.AmountCents
		}
	case OrderExpired:
		if sh := order(e.OrderID, e.SaleID); sh != nil {
			sh.ExpiredQty += e.Quantity
		}
	case StockReleased:
		if sh := order(e.OrderID, e.SaleID); sh != nil {
			sh.ReleasedQty += e.Quantity
			if e.ToPool {
				sh.PoolQty += e.Quantity
			}
		}
	case StockMoved:
		s := f.sale(e.SaleID)
		if e.From == e.To || e.Quantity <= 0 || e.From < 0 || e.To < 0 || e.From >= MaxShards || e.To >= MaxShards {
			f.violate("move %s of sale %s: %d units from shard %d to %d", e.MoveID, e.SaleID, e.Quantity, e.From, e.To)
			return
		}
		s.Moves++
		s.Shard(int(e.From)).MovedOut += e.Quantity
		to := s.Shard(int(e.To))
		to.MovedIn += e.Quantity
		to.MovesIn[e.MoveID] = e.Quantity
	case SaleEnded:
		s := f.sale(e.SaleID)
		s.ShardsUnsold = e.ShardsUnsold
		for i, n := range e.ShardsUnsold {
			s.Shard(i).Unsold = n
		}
		if len(e.ShardsUnsold) == 0 {
			// A sale of one shard records its unsold units once.
			s.Shard(0).Unsold = e.Unsold
		}
	}
}

// shardViolations checks a sharded sale's shards: no pool ever below zero,
// nothing left in any pool after the end and every shard's unsold units in
// SaleEnded, no shard named that the sale does not have.
func (s *SaleState) shardViolations(id string) []string {
	var out []string
	n := ShardCount(s.Shards)
	for i := range s.ByShard {
		if i >= n {
			out = append(out, fmt.Sprintf("sale %s: events of shard %d, but the sale has %d", id, i, n))
		}
	}
	if n == 1 {
		return out
	}
	for i := range n {
		r := s.ShardRemaining(i)
		switch {
		case r < 0:
			out = append(out, fmt.Sprintf("sale %s: shard %d pool %d < 0", id, i, r))
		case s.Ended && r != 0:
			out = append(out, fmt.Sprintf("sale %s: shard %d holds %d units after the end (not in SaleEnded)", id, i, r))
		}
	}
	if s.Ended {
		var sum int64
		for _, u := range s.ShardsUnsold {
			sum += u
		}
		if len(s.ShardsUnsold) != n || sum != s.Unsold {
			out = append(out, fmt.Sprintf("sale %s: SaleEnded unsold %d, shards_unsold %v (the sale has %d shards)", id, s.Unsold, s.ShardsUnsold, n))
		}
	}
	return out
}

// orderShardViolation checks that an order of a sharded sale was placed on
// its user's home shard, where the per-user limit is counted.
func orderShardViolation(o *OrderState, s *SaleState) string {
	if s == nil {
		return ""
	}
	n := ShardCount(s.Shards)
	if n == 1 || o.Status == "" {
		return ""
	}
	i, ok := ShardOfOrder(o.OrderID)
	switch {
	case !ok:
		return fmt.Sprintf("order %s: sale %s has %d shards but the order id names none", o.OrderID, s.SaleID, n)
	case i != HomeShard(o.UserID, n):
		return fmt.Sprintf("order %s: placed on shard %d, but user %s's home shard is %d", o.OrderID, i, o.UserID, HomeShard(o.UserID, n))
	}
	return ""
}

// validateShards reports what is wrong with a spec's shard count.
func (s SaleSpec) validateShards() []error {
	var errs []error
	switch {
	case s.Shards < 0 || s.Shards > MaxShards:
		errs = append(errs, Invalid("shards", "must be between 1 and %d", MaxShards))
	case s.Shards > 1 && s.Stock >= 1 && s.Shards > s.Stock:
		errs = append(errs, Invalid("shards", "must not exceed the stock (%d): every shard starts with a unit", s.Stock))
	case s.Shards > 1 && s.Protections.ReleaseStep > 0:
		// The release schedule counts the units out of one pool; split over
		// shards whose pools move it would need its own bookkeeping.
		errs = append(errs, Invalid("shards", "staged release (release_step) needs a single pool: shards must be 1"))
	}
	return errs
}

// recordedShards is the shard count SaleCreated records: 0 (omitted) for an
// unsharded sale, so its event is byte for byte what it was before sharding.
func recordedShards(n int64) int64 {
	if n <= 1 {
		return 0
	}
	return n
}
