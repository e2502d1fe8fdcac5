package commands

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

// Restore of sharded sales (restore.go does the rest): the same steps in the
// sharded layout. Orders, their idempotency fields and expiry entries go to
// the shard in their id; the units each user holds to their home shard; each
// shard's applied-moves hash gets every move the log credits to it (a mover
// that outlived the loss must not credit one again); pending moves do not
// exist after a restore, because the log counts a move in its recipient from
// its StockMoved on. Shard hashes are written after everything they point
// to, and the head last, as restore.go writes an unsharded sale's hash last.

// restoreCheckSale is restoreCheck for either layout.
func (g *Gate) restoreCheckSale(ctx context.Context, s *domain.SaleState) (SaleRestore, int64, error) {
	n := domain.ShardCount(s.Shards)
	if n == 1 {
		return g.restoreCheck(ctx, s.SaleID)
	}
	head := g.keys(s.SaleID)
	ss := g.sharded(SaleConfig{ID: s.SaleID, Stock: s.Stock, Shards: n})
	pipe := g.rdb.Pipeline()
	// One EXISTS per slot: a multi-key command must stay in one.
	exists := []*redis.IntCmd{pipe.Exists(ctx, head.sale, head.idem, head.units, head.due)}
	outboxes := []*redis.IntCmd{pipe.XLen(ctx, head.outbox)}
	remaining := make([]*redis.StringCmd, n)
	for i, k := range ss.keys {
		exists = append(exists, pipe.Exists(ctx, k.sale, k.idem, k.units, k.due, k.moves, k.movesIn))
		outboxes = append(outboxes, pipe.XLen(ctx, k.outbox))
		remaining[i] = pipe.HGet(ctx, k.sale, "remaining")
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

// restoreShardedSale is restoreSale for a sharded sale.
func (g *Gate) restoreShardedSale(ctx context.Context, s *domain.SaleState, orders []*domain.OrderState, sr *SaleRestore, opts RestoreOptions, rep *RestoreReport) error {
	n := domain.ShardCount(s.Shards)
	ss := g.sharded(SaleConfig{ID: s.SaleID, Stock: s.Stock, Shards: n})
	head := g.keys(s.SaleID)
	wrap := func(err error) error { return fmt.Errorf("restore sale %s: %w", s.SaleID, err) }
	if sr.Existed {
		// The head first: from here on no node loads the sale until the
		// restore writes it back.
		if err := g.rdb.Del(ctx, head.sale, head.idem, head.units, head.due).Err(); err != nil {
			return wrap(err)
		}
		inLog := make(map[string]bool, len(orders))
		for _, o := range orders {
			inLog[o.OrderID] = true
		}
		for _, k := range ss.keys {
			if err := g.rdb.Del(ctx, k.sale, k.idem, k.units, k.due, k.moves, k.movesIn).Err(); err != nil {
				return wrap(err)
			}
			removed, err := g.deleteOrders(ctx, k, opts.BatchSize, inLog)
			if err != nil {
				return wrap(err)
			}
			sr.OrdersRemoved += removed
		}
	}

	b := newBatch(ctx, g.rdb, opts.BatchSize)
	idem := make([]map[string]string, n)
	idemOrder := make([][]string, n)
	due := make([][]redis.Z, n)
	for i := range n {
		idem[i] = map[string]string{}
	}
	for _, o := range orders {
		i, ok := domain.ShardOfOrder(o.OrderID)
		if !ok || i >= n {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("sale %s: order %s names no shard of the sale's %d; not restored", s.SaleID, o.OrderID, n))
			continue
		}
		k := ss.keys[i]
		fields := []any{"user", o.UserID, "qty", o.Quantity, "status", o.Status,
			"pay_by", ms(o.PayBy), "placed_at", ms(o.PlacedAt), "amount", o.AmountCents, "price", o.PriceCents}
		switch o.Status {
		case domain.StatusPaid:
			fields = append(fields, "payment_ref", o.PaymentRef, "paid_at", ms(o.PaidAt))
		case domain.StatusExpired:
			fields = append(fields, "expired_at", ms(o.ExpiredAt))
		case domain.StatusReserved:
			due[i] = append(due[i], redis.Z{Score: float64(o.PayBy.UnixMilli()), Member: o.OrderID})
			sr.Reserved++
		}
		key := k.order(o.OrderID)
		if err := b.add(func(p redis.Pipeliner) {
			if sr.Existed {
				p.Del(ctx, key)
			}
			p.HSet(ctx, key, fields...)
		}); err != nil {
			return wrap(err)
		}
		sr.Orders++
		f := idemField(o.UserID, o.IdempotencyKey)
		if _, taken := idem[i][f]; !taken {
			idem[i][f] = o.OrderID
			idemOrder[i] = append(idemOrder[i], f)
		}
	}
	const chunk = 500
	for i, k := range ss.keys {
		for j := 0; j < len(idemOrder[i]); j += chunk {
			var args []any
			for _, f := range idemOrder[i][j:min(j+chunk, len(idemOrder[i]))] {
				args = append(args, f, idem[i][f])
			}
			if err := b.add(func(p redis.Pipeliner) { p.HSet(ctx, k.idem, args...) }); err != nil {
				return wrap(err)
			}
		}
		for j := 0; j < len(due[i]); j += chunk {
			zs := due[i][j:min(j+chunk, len(due[i]))]
			if err := b.add(func(p redis.Pipeliner) { p.ZAdd(ctx, k.due, zs...) }); err != nil {
				return wrap(err)
			}
		}
		if sh := s.ByShard[i]; sh != nil && len(sh.MovesIn) > 0 {
			var args []any
			for _, id := range slices.Sorted(maps.Keys(sh.MovesIn)) {
				args = append(args, id, sh.MovesIn[id])
			}
			if err := b.add(func(p redis.Pipeliner) { p.HSet(ctx, k.movesIn, args...) }); err != nil {
				return wrap(err)
			}
		}
	}
	users := slices.Sorted(maps.Keys(s.Buyers))
	for _, u := range users {
		// Zero stays, as in restore.go: the scripts leave it at 0 too.
		k := ss.keys[domain.HomeShard(u, n)]
		units := s.Buyers[u]
		if err := b.add(func(p redis.Pipeliner) { p.HSet(ctx, k.units, u, units) }); err != nil {
			return wrap(err)
		}
	}
	outboxes := []any{head.outbox}
	for _, k := range ss.keys {
		outboxes = append(outboxes, k.outbox)
	}
	if err := b.add(func(p redis.Pipeliner) {
		p.HSet(ctx, g.ShardsKey(), s.SaleID, n)
		p.SAdd(ctx, g.SalesKey(), s.SaleID)
		p.SAdd(ctx, g.OutboxesKey(), outboxes...)
	}); err != nil {
		return wrap(err)
	}
	if err := b.flush(); err != nil {
		return wrap(err)
	}
	if err := g.copyBlacklist(ctx, s.SaleID); err != nil {
		return wrap(err)
	}
	for i, k := range ss.keys {
		if err := g.rdb.HSet(ctx, k.sale, shardHash(s, i)...).Err(); err != nil {
			return wrap(err)
		}
	}
	if err := g.rdb.HSet(ctx, head.sale, headHash(s)...).Err(); err != nil {
		return wrap(err)
	}
	g.announceRestored(ctx, s)
	for i := range n {
		if r := s.ShardRemaining(i); r < 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("sale %s: shard %d restored with pool %d < 0 (the log oversold it)", s.SaleID, i, r))
		}
	}
	return nil
}

// shardHash is shard i's hash as init_shard.lua writes it (shardFields) and
// the scripts update it; counters the scripts create on first use are
// written only once they would exist, as saleHash does.
func shardHash(s *domain.SaleState, i int) []any {
	h := shardFields(s.SaleCreated, s.CreatedAt, i)
	sh := s.ByShard[i]
	if sh == nil {
		sh = &domain.ShardState{}
	}
	h = append(h, "remaining", s.ShardRemaining(i), "reserved", sh.ReservedQty, "paid", sh.PaidQty, "expired", sh.ExpiredQty)
	if sh.Orders > 0 {
		h = append(h, "orders", sh.Orders)
	}
	if sh.PaidOrders > 0 {
		h = append(h, "paid_cents", sh.PaidCents)
	}
	if sh.PoolQty > 0 {
		h = append(h, "pool_released", sh.PoolQty)
	}
	if returned := sh.ReleasedQty - sh.PoolQty; returned > 0 {
		h = append(h, "returned", returned)
	}
	if sh.MovedIn > 0 {
		h = append(h, "moved_in", sh.MovedIn)
	}
	if sh.MovedOut > 0 {
		h = append(h, "moved_out", sh.MovedOut)
	}
	if s.Ended {
		h = append(h, "ended", 1, "unsold", sh.Unsold, "collected", 1)
	}
	return h
}

// headHash is a sharded sale's head as create_sale.lua writes it
// (headFields) and end_shards.lua ends it.
func headHash(s *domain.SaleState) []any {
	h := headFields(s.SaleCreated, s.CreatedAt)
	if s.Ended {
		h = append(h, "ended", 1, "end_reason", s.EndReason, "ended_at", ms(s.EndedAt), "unsold", s.Unsold)
	}
	return h
}
