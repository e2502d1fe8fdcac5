package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
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
	// Shards are a sharded sale's shards (nil for an unsharded sale): the
	// counters above are their sums (docs/sharding.md).
	Shards []ShardCounters
}

// SaleCounters reads the counters of sale id straight from Redis (Sale serves
// a cached view); ok is false when the gate has no such sale.
func (g *Gate) SaleCounters(ctx context.Context, id string) (c SaleCounters, ok bool, err error) {
	h, err := g.rdb.HGetAll(ctx, g.keys(id).sale).Result()
	if err != nil {
		return SaleCounters{}, false, fmt.Errorf("read sale %s: %w", id, err)
	}
	if len(h) == 0 {
		return SaleCounters{}, false, nil
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(h[k], 10, 64); return n }
	c = SaleCounters{
		SaleID: id, Stock: num("stock"), Remaining: num("remaining"), Reserved: num("reserved"),
		Paid: num("paid"), Expired: num("expired"), Orders: num("orders"),
		Ended: h["ended"] == "1", Unsold: num("unsold"),
	}
	if n := num("shards"); n > 1 {
		// The head holds no pool counters: they are the shards' sums.
		if err := g.shardedCounters(ctx, &c, int(n)); err != nil {
			return SaleCounters{}, false, err
		}
	}
	return c, true, nil
}

// OutboxBacklog returns the number of entries in every outbox stream that
// holds any: commands the gate decided whose events the relay has not
// forwarded (or not yet trimmed). Keys are sale ids.
func (g *Gate) OutboxBacklog(ctx context.Context) (map[string]int64, error) {
	streams, err := g.rdb.SMembers(ctx, g.OutboxesKey()).Result()
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
			out[saleOfKey(g.cfg.Prefix, s)] += n
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
			OrderID: orderID, SaleID: saleOfKey(g.cfg.Prefix, k), UserID: h["user"], Quantity: num("qty"),
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

// saleOfKey returns the sale id in a key "<prefix>{sale:ID}:..." or, of a
// shard of a sharded sale, "<prefix>{sale:ID:...}:..." (ids have no ':').
func saleOfKey(prefix, key string) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(key, prefix), "{sale:")
	if i := strings.IndexAny(rest, "}:"); i >= 0 {
		return rest[:i]
	}
	return rest
}
