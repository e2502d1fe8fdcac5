package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

// createShardedSale writes a sharded sale (docs/sharding.md): the shard
// count first (ShardsKey, for Block), then the registrations, the blacklist
// copies, every shard with its allocation, and the head with SaleCreated
// LAST. Until the head exists no node knows the sale (loadSale reads it), so
// nobody buys from a half-made sale, and the log never has a SaleCreated
// whose shards are missing; a crash before it leaves unreachable keys only.
func (g *Gate) createShardedSale(ctx context.Context, ev domain.SaleCreated, env []byte, now time.Time) (SaleView, error) {
	id, n := ev.SaleID, int(ev.Shards)
	ss := g.newShardedSale(SaleConfig{ID: id, Stock: ev.Stock, Shards: n})
	head := g.keys(id)
	if err := g.rdb.HSet(ctx, g.ShardsKey(), id, n).Err(); err != nil {
		return SaleView{}, fmt.Errorf("register shards of sale %s: %w", id, err)
	}
	pipe := g.rdb.Pipeline()
	pipe.SAdd(ctx, g.SalesKey(), id)
	outboxes := []any{head.outbox}
	for _, k := range ss.keys {
		outboxes = append(outboxes, k.outbox)
	}
	pipe.SAdd(ctx, g.OutboxesKey(), outboxes...)
	if _, err := pipe.Exec(ctx); err != nil {
		return SaleView{}, fmt.Errorf("register sale %s: %w", id, err)
	}
	if err := g.copyBlacklist(ctx, id); err != nil {
		return SaleView{}, err
	}
	for i, k := range ss.keys {
		v, err := initShardScript.Run(ctx, g.rdb, []string{k.sale}, shardFields(ev, now, i)...).Result()
		if err != nil {
			return SaleView{}, fmt.Errorf("create shard %d of sale %s: %w", i, id, err)
		}
		if r, err := toReply(v); err != nil || r.str(0) != "created" {
			return SaleView{}, fmt.Errorf("create shard %d of sale %s: %v %v: %w", i, id, r, err, domain.ErrConflict)
		}
	}
	args := append([]any{env}, headFields(ev, now)...)
	v, err := g.createSale.Run(ctx, g.rdb, []string{head.sale, head.outbox}, args...).Result()
	if err != nil {
		return SaleView{}, fmt.Errorf("create sale %s: %w", id, err)
	}
	r, err := toReply(v)
	if err != nil {
		return SaleView{}, err
	}
	if r.str(0) != "created" {
		return SaleView{}, fmt.Errorf("create sale %s: %s: %w", id, r.str(0), domain.ErrConflict)
	}
	return g.Sale(ctx, id)
}

// shardedRemaining is the sum of a sharded sale's pools, read now (units in
// flight between two shards are in neither for a moment: the view may be a
// little low, never high).
func (g *Gate) shardedRemaining(ctx context.Context, ss *shardedSale) (int64, error) {
	pipe := g.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, ss.n)
	for i, k := range ss.keys {
		cmds[i] = pipe.HGet(ctx, k.sale, "remaining")
	}
	if _, err := pipe.Exec(ctx); err != nil && !isNil(err) {
		return 0, fmt.Errorf("read shards of sale %s: %w", ss.id, err)
	}
	var sum int64
	for i, c := range cmds {
		n, _ := c.Int64()
		ss.left[i].Store(n)
		sum += n
	}
	return sum, nil
}

// ShardCounters are one shard's pool and moves as the gate holds them now.
type ShardCounters struct {
	// Remaining is the shard's pool plus the units moved to it whose credit
	// has not landed yet: what the log (StockMoved) counts in the shard.
	Remaining int64
	// InFlight is the part of Remaining still on its way from a donor.
	InFlight int64
	MovedIn  int64
	MovedOut int64
	Ended    bool // closed by an end
}

// shardedCounters fills c, read from the head hash h, with the sums over the
// shards of a sharded sale, and c.Shards with each shard.
func (g *Gate) shardedCounters(ctx context.Context, c *SaleCounters, n int) error {
	ss := g.sharded(SaleConfig{ID: c.SaleID, Stock: c.Stock, Shards: n})
	pipe := g.rdb.Pipeline()
	hashes := make([]*redis.MapStringStringCmd, n)
	moves := make([]*redis.MapStringStringCmd, n)
	for i, k := range ss.keys {
		hashes[i] = pipe.HGetAll(ctx, k.sale)
		moves[i] = pipe.HGetAll(ctx, k.moves)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("read shards of sale %s: %w", c.SaleID, err)
	}
	c.Shards = make([]ShardCounters, n)
	for i := range n {
		h := hashes[i].Val()
		num := func(k string) int64 { v, _ := strconv.ParseInt(h[k], 10, 64); return v }
		c.Shards[i] = ShardCounters{Remaining: num("remaining"), MovedIn: num("moved_in"), MovedOut: num("moved_out"), Ended: h["ended"] == "1"}
		c.Remaining += num("remaining")
		c.Reserved += num("reserved")
		c.Paid += num("paid")
		c.Expired += num("expired")
		c.Orders += num("orders")
	}
	// Moves debited and not yet cleared: those the recipient has not
	// credited are in flight, counted where the log counts them.
	type pending struct {
		id     string
		to, qt int64
	}
	var ps []pending
	check := g.rdb.Pipeline()
	var landed []*redis.BoolCmd
	for i := range n {
		for id, v := range moves[i].Val() {
			to, qty, _, err := parseMove(v)
			if err != nil || to < 0 || int(to) >= n {
				return fmt.Errorf("sale %s shard %d: move %s: bad record %q", c.SaleID, i, id, v)
			}
			ps = append(ps, pending{id, to, qty})
			landed = append(landed, check.HExists(ctx, ss.keys[to].movesIn, id))
		}
	}
	if len(ps) > 0 {
		if _, err := check.Exec(ctx); err != nil {
			return fmt.Errorf("read moves of sale %s: %w", c.SaleID, err)
		}
	}
	for j, p := range ps {
		if !landed[j].Val() {
			c.Shards[p.to].Remaining += p.qt
			c.Shards[p.to].InFlight += p.qt
			c.Remaining += p.qt
		}
	}
	return nil
}

// parseMove reads a moves hash value: "to qty at-ms".
func parseMove(v string) (to, qty, atMS int64, err error) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return 0, 0, 0, fmt.Errorf("move record %q", v)
	}
	to, err1 := strconv.ParseInt(f[0], 10, 64)
	qty, err2 := strconv.ParseInt(f[1], 10, 64)
	atMS, err3 := strconv.ParseInt(f[2], 10, 64)
	return to, qty, atMS, errors.Join(err1, err2, err3)
}

// MoveRecoverAfter is how old a move must be before a sweeper credits it for
// its mover: a mover that is alive credits within one Redis timeout, and a
// credit is applied once whoever sends it, so this only saves work.
const MoveRecoverAfter = 5 * time.Second

// sweepShardedSale is sweepSale for a sharded sale: it expires every shard's
// due reservations, credits moves whose mover died, finishes an end a node
// began and did not finish, ends the sale when its window closed, and
// otherwise rebalances the shards' pools.
func (g *Gate) sweepShardedSale(ctx context.Context, ss *shardedSale, res *SweepResult) error {
	// Reservations outlive the end of their sale, so every sweep expires.
	for _, k := range ss.keys {
		if err := g.sweepDue(ctx, ss.id, k.due, res); err != nil {
			return err
		}
	}
	h, err := g.rdb.HMGet(ctx, g.keys(ss.id).sale, "starts", "ends", "ended", "ending").Result()
	if err != nil {
		return fmt.Errorf("sweep sale %s: %w", ss.id, err)
	}
	str := func(i int) string { s, _ := h[i].(string); return s }
	if str(2) == "1" {
		return nil // the end credited every move; none can start after it
	}
	if _, err := g.recoverMoves(ctx, ss, MoveRecoverAfter); err != nil {
		return err
	}
	now := g.clock.Now()
	switch {
	case str(3) != "":
		// An end that a node began and did not finish: the reason it began
		// with stays (end_begin.lua).
		if _, err := g.EndSale(ctx, EndSale{SaleID: ss.id, Reason: str(3)}); err != nil {
			return err
		}
		res.Ended++
		return nil
	case str(1) != "" && !now.Before(fromMS(str(1))):
		endCtx := domain.WithMetadata(ctx, domain.MetadataFrom(ctx).CausedBy(domain.EventID(ss.id, domain.TypeSaleCreated)))
		if _, err := g.EndSale(endCtx, EndSale{SaleID: ss.id, Reason: domain.EndReasonWindowClosed}); err != nil {
			return err
		}
		res.Ended++
		return nil
	case str(0) != "" && !now.Before(fromMS(str(0))):
		_, err := g.Rebalance(ctx, ss.id)
		return err
	}
	return nil
}

// sweepDue expires the due reservations of one expiry queue.
func (g *Gate) sweepDue(ctx context.Context, saleID, due string, res *SweepResult) error {
	for {
		now := g.clock.Now()
		ids, err := g.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: due, Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10),
			ByScore: true, Count: SweepBatch,
		}).Result()
		if err != nil {
			return fmt.Errorf("sweep sale %s: %w", saleID, err)
		}
		for _, orderID := range ids {
			ok, err := g.Expire(ctx, orderID)
			switch {
			case errors.Is(err, domain.ErrOrderNotFound):
				g.rdb.ZRem(ctx, due, orderID) // a stale entry; nothing to release
			case err != nil:
				return err
			case ok:
				res.Expired++
			default:
				res.Lost++
			}
		}
		if len(ids) < SweepBatch {
			return nil
		}
	}
}
