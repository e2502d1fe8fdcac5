package commands

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

// The restore of one sale (Restore says the order of things): orders, their
// idempotency fields and expiry entries go to the shard in their id; the
// units each user holds to their home shard; each shard's applied-moves hash
// gets every move the log credits to it (a mover that outlived the loss must
// not credit one again); pending moves do not exist after a restore, because
// the log counts a move in its recipient from its StockMoved on.

// restoreCheck reads what the gate has of a sale, in today's layout or an
// earlier one: whether any of its keys exists, its remaining stock, and the
// length of its outboxes.
func (g *Gate) restoreCheck(ctx context.Context, s *domain.SaleState) (SaleRestore, int64, error) {
	n := domain.ShardCount(s.Shards)
	head := g.ks.Head(s.SaleID)
	pipe := g.rdb.Pipeline()
	// One EXISTS per slot: a multi-key command must stay in one.
	exists := []*redis.IntCmd{pipe.Exists(ctx, head.Hash, head.Legacy)}
	outboxes := []*redis.IntCmd{pipe.XLen(ctx, head.Outbox)}
	remaining := make([]*redis.StringCmd, n)
	for i := range n {
		k := g.ks.Shard(s.SaleID, i, n)
		exists = append(exists, pipe.Exists(ctx, k.Hash, k.Idem, k.Units, k.Due, k.Moves, k.MovesIn))
		if k.Outbox != head.Outbox {
			outboxes = append(outboxes, pipe.XLen(ctx, k.Outbox))
		}
		remaining[i] = pipe.HGet(ctx, k.Hash, "remaining")
	}
	if _, err := pipe.Exec(ctx); err != nil && !isNil(err) {
		return SaleRestore{}, 0, fmt.Errorf("restore: read sale %s: %w", s.SaleID, err)
	}
	sr := SaleRestore{SaleID: s.SaleID}
	for _, e := range exists {
		sr.Existed = sr.Existed || e.Val() > 0
	}
	for _, r := range remaining {
		if v, err := r.Int64(); err == nil {
			sr.RemainingBefore, sr.HadRemaining = sr.RemainingBefore+v, true
		}
	}
	var outbox int64
	for _, o := range outboxes {
		outbox += o.Val()
	}
	return sr, outbox, nil
}

// restoreSale rewrites one sale's keys.
func (g *Gate) restoreSale(ctx context.Context, s *domain.SaleState, orders []*domain.OrderState, sr *SaleRestore, opts RestoreOptions, rep *RestoreReport) error {
	n := domain.ShardCount(s.Shards)
	shards := make([]ShardKeys, n)
	for i := range n {
		shards[i] = g.ks.Shard(s.SaleID, i, n)
	}
	wrap := func(err error) error { return fmt.Errorf("restore sale %s: %w", s.SaleID, err) }
	if sr.Existed {
		if err := g.clearSale(ctx, s.SaleID, shards, orders, opts, sr); err != nil {
			return wrap(err)
		}
	}
	b := newBatch(ctx, g.rdb, opts.BatchSize)
	if err := g.restoreOrders(ctx, b, s, shards, orders, sr, rep); err != nil {
		return wrap(err)
	}
	if err := g.restoreUnits(ctx, b, s, shards); err != nil {
		return wrap(err)
	}
	head := g.ks.Head(s.SaleID)
	outboxes := []any{head.Outbox}
	for _, k := range shards {
		outboxes = append(outboxes, k.Outbox)
	}
	if err := b.add(func(p redis.Pipeliner) {
		p.HSet(ctx, g.ks.ShardCounts(), s.SaleID, n)
		p.SAdd(ctx, g.ks.Sales(), s.SaleID)
		p.SAdd(ctx, g.ks.Outboxes(), outboxes...)
	}); err != nil {
		return wrap(err)
	}
	if err := b.flush(); err != nil {
		return wrap(err)
	}
	// The blacklist is not in the log: the sale gets a copy of whatever the
	// gate's blacklist holds now, as CreateSale gives a new sale.
	if err := g.copyBlacklist(ctx, s.SaleID); err != nil {
		return wrap(err)
	}
	// Last, the shards and the head: the scripts now find everything they
	// point to.
	for i, k := range shards {
		if err := g.rdb.HSet(ctx, k.Hash, shardHash(s, i)...).Err(); err != nil {
			return wrap(err)
		}
	}
	if err := g.rdb.HSet(ctx, head.Hash, headHash(s)...).Err(); err != nil {
		return wrap(err)
	}
	g.announceRestored(ctx, s)
	for i := range n {
		if r := s.ShardRemaining(i); r < 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("sale %s: shard %d restored with pool %d < 0 (the log oversold it); it answers sold_out", s.SaleID, i, r))
		}
	}
	return nil
}

// clearSale deletes what the gate has of a sale before a forced restore: the
// head first (from here on no node loads the sale until the restore writes it
// back), then each shard's hashes and the orders the log does not know. The
// head of an earlier layout goes too: the restore writes today's.
func (g *Gate) clearSale(ctx context.Context, id string, shards []ShardKeys, orders []*domain.OrderState, opts RestoreOptions, sr *SaleRestore) error {
	head := g.ks.Head(id)
	if err := g.rdb.Del(ctx, head.Hash, head.Legacy).Err(); err != nil {
		return err
	}
	inLog := make(map[string]bool, len(orders))
	for _, o := range orders {
		inLog[o.OrderID] = true
	}
	for _, k := range shards {
		if err := g.rdb.Del(ctx, k.Hash, k.Idem, k.Units, k.Due, k.Moves, k.MovesIn).Err(); err != nil {
			return err
		}
		removed, err := g.deleteOrders(ctx, k, opts.BatchSize, inLog)
		if err != nil {
			return err
		}
		sr.OrdersRemoved += removed
	}
	return nil
}

// restoreChunk is how many members one restore command writes.
const restoreChunk = 500

// restoreOrders queues each order's hash, and per shard the idempotency
// fields, the expiry queue and the applied moves.
func (g *Gate) restoreOrders(ctx context.Context, b *batch, s *domain.SaleState, shards []ShardKeys, orders []*domain.OrderState, sr *SaleRestore, rep *RestoreReport) error {
	idx := make([]shardIndexes, len(shards))
	for i := range idx {
		idx[i].idem = map[string]string{}
	}
	for _, o := range orders {
		i, _ := domain.ShardOfOrder(o.OrderID) // an id without one is of shard 0
		if i >= len(shards) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("sale %s: order %s names no shard of the sale's %d; not restored", s.SaleID, o.OrderID, len(shards)))
			continue
		}
		if err := b.add(func(p redis.Pipeliner) { restoreOrder(ctx, p, shards[i].Order(o.OrderID), o, sr.Existed) }); err != nil {
			return err
		}
		sr.Orders++
		if o.Status == domain.StatusReserved {
			sr.Reserved++
		}
		idx[i].add(o)
	}
	for i, k := range shards {
		if err := idx[i].restore(ctx, b, k, s.ByShard[i]); err != nil {
			return err
		}
	}
	return nil
}

// restoreOrder writes an order's hash; over one clearSale kept (existed),
// without its stale fields.
func restoreOrder(ctx context.Context, p redis.Pipeliner, key string, o *domain.OrderState, existed bool) {
	fields := []any{"user", o.UserID, "qty", o.Quantity, "status", o.Status,
		"pay_by", ms(o.PayBy), "placed_at", ms(o.PlacedAt), "amount", o.AmountCents, "price", o.PriceCents}
	switch o.Status {
	case domain.StatusPaid:
		fields = append(fields, "payment_ref", o.PaymentRef, "paid_at", ms(o.PaidAt))
	case domain.StatusExpired:
		fields = append(fields, "expired_at", ms(o.ExpiredAt))
	}
	if existed {
		p.Del(ctx, key)
	}
	p.HSet(ctx, key, fields...)
}

// shardIndexes are one shard's indexes of its orders, as the restore
// collects them.
type shardIndexes struct {
	idem      map[string]string // idempotency field → order id
	idemOrder []string          // fields in placing order, for a stable write
	due       []redis.Z
}

// add indexes o. For orders recorded without their idempotency key
// (OrderPlaced v1) the first one takes the user's key-less slot, as it did
// in the gate.
func (x *shardIndexes) add(o *domain.OrderState) {
	if o.Status == domain.StatusReserved {
		x.due = append(x.due, redis.Z{Score: float64(o.PayBy.UnixMilli()), Member: o.OrderID})
	}
	f := idemField(o.UserID, o.IdempotencyKey)
	if _, taken := x.idem[f]; !taken {
		x.idem[f] = o.OrderID
		x.idemOrder = append(x.idemOrder, f)
	}
}

// restore queues the indexes of shard k and the moves the log credits to it.
func (x *shardIndexes) restore(ctx context.Context, b *batch, k ShardKeys, sh *domain.ShardState) error {
	for j := 0; j < len(x.idemOrder); j += restoreChunk {
		var args []any
		for _, f := range x.idemOrder[j:min(j+restoreChunk, len(x.idemOrder))] {
			args = append(args, f, x.idem[f])
		}
		if err := b.add(func(p redis.Pipeliner) { p.HSet(ctx, k.Idem, args...) }); err != nil {
			return err
		}
	}
	for j := 0; j < len(x.due); j += restoreChunk {
		zs := x.due[j:min(j+restoreChunk, len(x.due))]
		if err := b.add(func(p redis.Pipeliner) { p.ZAdd(ctx, k.Due, zs...) }); err != nil {
			return err
		}
	}
	if sh == nil || len(sh.MovesIn) == 0 {
		return nil
	}
	var args []any
	for _, id := range slices.Sorted(maps.Keys(sh.MovesIn)) {
		args = append(args, id, sh.MovesIn[id])
	}
	return b.add(func(p redis.Pipeliner) { p.HSet(ctx, k.MovesIn, args...) })
}

// restoreUnits queues the units each user holds, on their home shard. Zero
// stays: the scripts leave a user's field at 0 when their last reservation
// expires, and so does the restore.
func (g *Gate) restoreUnits(ctx context.Context, b *batch, s *domain.SaleState, shards []ShardKeys) error {
	byShard := make([][]any, len(shards))
	for _, u := range slices.Sorted(maps.Keys(s.Buyers)) {
		i := domain.HomeShard(u, len(shards))
		byShard[i] = append(byShard[i], u, s.Buyers[u])
	}
	for i, k := range shards {
		for j := 0; j < len(byShard[i]); j += 2 * restoreChunk {
			args := byShard[i][j:min(j+2*restoreChunk, len(byShard[i]))]
			if err := b.add(func(p redis.Pipeliner) { p.HSet(ctx, k.Units, args...) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// shardHash is shard i's hash as init_shard.lua writes it (shardFields) and
// the scripts update it. Counters the scripts create on first use (HINCRBY)
// are written only once they would exist, so a restored hash equals the
// original field for field. Later pairs override earlier ones in one HSET.
func shardHash(s *domain.SaleState, i int) []any {
	h := shardFields(s.SaleCreated, s.CreatedAt, i)
	sh := s.ByShard[i]
	if sh == nil {
		sh = &domain.ShardState{}
	}
	h = append(h, "remaining", s.ShardRemaining(i), "reserved", sh.ReservedQty, "paid", sh.PaidQty, "expired", sh.ExpiredQty)
	for _, c := range []struct {
		field  string
		v      int64
		exists bool
	}{
		{"orders", sh.Orders, sh.Orders > 0}, {"paid_cents", sh.PaidCents, sh.PaidOrders > 0},
		{"pool_released", sh.PoolQty, sh.PoolQty > 0}, {"returned", sh.ReleasedQty - sh.PoolQty, sh.ReleasedQty > sh.PoolQty},
		{"moved_in", sh.MovedIn, sh.MovedIn > 0}, {"moved_out", sh.MovedOut, sh.MovedOut > 0},
	} {
		if c.exists {
			h = append(h, c.field, c.v)
		}
	}
	if s.Ended {
		h = append(h, "ended", 1, "unsold", sh.Unsold, "collected", 1)
	}
	return h
}

// headHash is a sale's head as create_head.lua writes it (headFields) and
// end_finish.lua ends it.
func headHash(s *domain.SaleState) []any {
	h := headFields(s.SaleCreated, s.CreatedAt)
	if s.Ended {
		h = append(h, "ended", 1, "end_reason", s.EndReason, "ended_at", ms(s.EndedAt), "unsold", s.Unsold)
	}
	return h
}
