package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

// The gate's state read as it is, for audits: no cache, no decisions.

// SaleCounters are a sale's counters as the gate holds them now.
type SaleCounters struct {
	SaleID    string
	Stock     int64
	Remaining int64
	Reserved  int64 // units ever reserved
	Paid      int64
	Expired   int64
	Orders    int64
	Ended     bool
	Unsold    int64
	// Shards are the sale's shards (one for a classic sale): the counters
	// above are their sums (docs/sharding.md).
	Shards []ShardCounters
}

// SaleCounters reads the counters of sale id straight from Redis (Sale serves
// a cached view); ok is false when the gate has no such sale.
func (g *Gate) SaleCounters(ctx context.Context, id string) (c SaleCounters, ok bool, err error) {
	h, err := g.readHead(ctx, id)
	if errors.Is(err, domain.ErrSaleNotFound) {
		return SaleCounters{}, false, nil
	}
	if err != nil {
		return SaleCounters{}, false, err
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(h[k], 10, 64); return n }
	c = SaleCounters{SaleID: id, Stock: num("stock"), Ended: h["ended"] == "1", Unsold: num("unsold")}
	// The head holds no pool counters: they are the shards' sums.
	if err := g.shardCounters(ctx, &c, domain.ShardCount(num("shards"))); err != nil {
		return SaleCounters{}, false, err
	}
	return c, true, nil
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

// shardCounters fills c with the sums over the n shards of its sale, and
// c.Shards with each shard.
func (g *Gate) shardCounters(ctx context.Context, c *SaleCounters, n int) error {
	shards := make([]ShardKeys, n)
	pipe := g.rdb.Pipeline()
	hashes := make([]*redis.MapStringStringCmd, n)
	moves := make([]*redis.MapStringStringCmd, n)
	for i := range n {
		shards[i] = g.ks.Shard(c.SaleID, i, n)
		hashes[i] = pipe.HGetAll(ctx, shards[i].Hash)
		moves[i] = pipe.HGetAll(ctx, shards[i].Moves)
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
	return g.movesInFlight(ctx, c, shards, moves)
}

// movesInFlight counts the moves debited and not yet cleared whose recipient
// has not credited them where the log counts them: in the recipient.
func (g *Gate) movesInFlight(ctx context.Context, c *SaleCounters, shards []ShardKeys, moves []*redis.MapStringStringCmd) error {
	type pending struct {
		id     string
		to, qt int64
	}
	var ps []pending
	check := g.rdb.Pipeline()
	var landed []*redis.BoolCmd
	for i := range shards {
		for id, v := range moves[i].Val() {
			to, qty, _, err := parseMove(v)
			if err != nil || to < 0 || int(to) >= len(shards) {
				return fmt.Errorf("sale %s shard %d: move %s: bad record %q", c.SaleID, i, id, v)
			}
			ps = append(ps, pending{id, to, qty})
			landed = append(landed, check.HExists(ctx, shards[to].MovesIn, id))
		}
	}
	if len(ps) == 0 {
		return nil
	}
	if _, err := check.Exec(ctx); err != nil {
		return fmt.Errorf("read moves of sale %s: %w", c.SaleID, err)
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

// OutboxBacklog returns the number of entries in every outbox stream that
// holds any: commands the gate decided whose events the relay has not
// forwarded (or not yet trimmed). Keys are sale ids.
func (g *Gate) OutboxBacklog(ctx context.Context) (map[string]int64, error) {
	streams, err := g.rdb.SMembers(ctx, g.ks.Outboxes()).Result()
	if err != nil && !isNil(err) {
		return nil, fmt.Errorf("list outboxes: %w", err)
	}
	pipe := g.rdb.Pipeline()
	lens := make([]*redis.IntCmd, len(streams))
	for i, s := range streams {
		lens[i] = pipe.XLen(ctx, s)
	}
	if len(streams) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !isNil(err) {
			return nil, fmt.Errorf("read outboxes: %w", err)
		}
	}
	out := map[string]int64{}
	for i, s := range streams {
		if n := lens[i].Val(); n > 0 {
			// A sharded sale has an outbox per shard besides its own.
			out[g.ks.SaleOfKey(s)] += n
		}
	}
	return out, nil
}

// EachOrder calls fn with every order hash of sale saleID (all sales if
// empty), in no particular order and never concurrently. It scans the
// keyspace (on Redis Cluster, every master) and reads the hashes in
// pipelines, so it suits audits, not request paths.
func (g *Gate) EachOrder(ctx context.Context, saleID string, fn func(GateOrder) error) error {
	if _, ok := g.rdb.(*redis.ClusterClient); ok {
		// ForEachMaster scans the masters in parallel goroutines; callers
		// fill maps in fn, so they get one order at a time.
		var mu sync.Mutex
		unsafe := fn
		fn = func(o GateOrder) error {
			mu.Lock()
			defer mu.Unlock()
			return unsafe(o)
		}
	}
	match := globEscape(g.cfg.Prefix) + "{sale:*}:o:*"
	if saleID != "" {
		// "{sale:ID}:o:*" and a sharded sale's "{sale:ID:<shard tag>}:o:*".
		match = globEscape(g.cfg.Prefix+"{sale:"+saleID) + "[}:]*:o:*"
	}
	scan := func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
			if err != nil {
				return fmt.Errorf("scan orders: %w", err)
			}
			if err := g.readOrders(ctx, keys, fn); err != nil {
				return err
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	switch c := g.rdb.(type) {
	case *redis.Client:
		return scan(ctx, c)
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, scan)
	}
	return fmt.Errorf("scan orders: unsupported Redis client %T", g.rdb)
}

func (g *Gate) readOrders(ctx context.Context, keys []string, fn func(GateOrder) error) error {
	if len(keys) == 0 {
		return nil
	}
	pipe := g.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	for i, k := range keys {
		h := cmds[i].Val()
		if len(h) == 0 {
			continue // gone since the scan
		}
		i := strings.Index(k, "}:o:")
		if i < 0 {
			continue
		}
		orderID := k[i+len("}:o:"):]
		num := func(f string) int64 { n, _ := strconv.ParseInt(h[f], 10, 64); return n }
		o := GateOrder{
			OrderID: orderID, SaleID: g.ks.SaleOfKey(k), UserID: h["user"], Quantity: num("qty"),
			PriceCents: num("price"), AmountCents: num("amount"), Status: h["status"],
			PayBy: fromMS(h["pay_by"]), PaymentRef: h["payment_ref"], PlacedAt: fromMS(h["placed_at"]),
			PaidAt: fromMS(h["paid_at"]), ExpiredAt: fromMS(h["expired_at"]),
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}
