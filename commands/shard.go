package commands

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

// Sharded stock: the key layout and this node's memory of a sharded sale.
// The design, and why it is exact, is in docs/sharding.md. In short: a sale
// with Shards = S > 1 keeps its configuration and sale-level state in its
// HEAD, the usual {sale:ID} keys (sale hash without pool counters, outbox for
// SaleCreated and SaleEnded), and its stock in S shards, each a complete
// sale-shaped keyspace of its own hash tag (shard hash with the configuration
// copied and the shard's pool and counters, idempotency hash, units hash,
// expiry queue, outbox, orders, blacklist copy, rate-limit keys, moves). A
// user buys on their home shard only (domain.HomeShard), so everything about
// them is decided in one script on one slot, as in an unsharded sale; when
// their home pool is empty, units are MOVED to it from another shard
// (StockMoved), never the user to another shard.

var (
	//go:embed lua/move_out.lua
	moveOutLua string
	//go:embed lua/credit.lua
	creditLua string
	//go:embed lua/init_shard.lua
	initShardLua string
	//go:embed lua/close_shard.lua
	closeShardLua string
	//go:embed lua/collect_shard.lua
	collectShardLua string
	//go:embed lua/end_begin.lua
	endBeginLua string
	//go:embed lua/end_shards.lua
	endShardsLua string

	moveOutScript      = redis.NewScript(moveOutLua)
	creditScript       = redis.NewScript(creditLua)
	initShardScript    = redis.NewScript(initShardLua)
	closeShardScript   = redis.NewScript(closeShardLua)
	collectShardScript = redis.NewScript(collectShardLua)
	endBeginScript     = redis.NewScript(endBeginLua)
	endShardsScript    = redis.NewScript(endShardsLua)

	// shardScripts are loaded by Gate.Load with the others.
	shardScripts = []*redis.Script{moveOutScript, creditScript, initShardScript, closeShardScript,
		collectShardScript, endBeginScript, endShardsScript}
)

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// crc16 is Redis Cluster's key hash: CRC-16/XMODEM (polynomial 0x1021).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// shardTag is the hash tag of shard i of n of a sale: "sale:ID:i", or
// "sale:ID:i:k" with the smallest k ≥ 1 that puts the tag's slot in the i-th
// n-th of the slot space. Tags of one sale therefore fall in distinct ranges
// of slots, and a cluster whose masters own contiguous ranges (as redis-cli
// --cluster create assigns them) spreads the shards over its masters instead
// of leaving that to chance (three random slots land on three different of
// three masters only 2 times in 9). The search is a pure function of the sale
// id, so every node, the restore and the tests find the same tags.
func shardTag(saleID string, i, n int) string {
	base := "sale:" + saleID + ":" + strconv.Itoa(i)
	lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n
	tag := base
	for k := 1; k <= 1<<16; k++ {
		if s := int(crc16(tag) % clusterSlots); s >= lo && s < hi {
			return tag
		}
		tag = base + ":" + strconv.Itoa(k)
	}
	return base // unreachable in practice: ~n tries are expected
}

// shardKeys names the keys of shard i of a sale of n shards.
func shardKeys(prefix, saleID string, i, n int) keys {
	return keysAt(prefix + "{" + shardTag(saleID, i, n) + "}")
}

// ShardSaleKey is the key of the hash of shard i of a sale of n shards: for
// tools that locate a shard (on a cluster, MasterForKey) or inspect it.
func (g *Gate) ShardSaleKey(saleID string, i, n int) string {
	return shardKeys(g.cfg.Prefix, saleID, i, n).sale
}

// ShardsKey is the hash of sharded sales: sale id → shard count. It is
// written before the sale is registered in SalesKey, so that Block, which
// lists SalesKey and then reads this hash, knows every shard of a sale it
// lists, however it races the sale's creation (blacklist.go).
func (g *Gate) ShardsKey() string { return g.cfg.Prefix + "shards" }

// shardedSale is this node's memory of one sharded sale: its keys and a hint
// of each shard's pool. The hints only order the shards a pull tries (the
// fullest first); every shard is tried before a sale is called sold out.
type shardedSale struct {
	id   string
	n    int
	keys []keys
	left []atomic.Int64 // last pool this node saw per shard
}

func (g *Gate) newShardedSale(cfg SaleConfig) *shardedSale {
	ss := &shardedSale{id: cfg.ID, n: cfg.Shards, keys: make([]keys, cfg.Shards), left: make([]atomic.Int64, cfg.Shards)}
	for i := range cfg.Shards {
		ss.keys[i] = shardKeys(g.cfg.Prefix, cfg.ID, i, cfg.Shards)
		ss.left[i].Store(domain.ShardInitial(cfg.Stock, cfg.Shards, i))
	}
	return ss
}

// sharded returns this node's memory of a sharded sale of configuration cfg.
func (g *Gate) sharded(cfg SaleConfig) *shardedSale {
	if v, ok := g.shardSales.Load(cfg.ID); ok {
		return v.(*shardedSale)
	}
	v, _ := g.shardSales.LoadOrStore(cfg.ID, g.newShardedSale(cfg))
	return v.(*shardedSale)
}

// shardsOf returns the sharded layout of sale id, or nil for an unsharded
// sale (and for an id the gate does not know: its keys are the classic ones).
func (g *Gate) shardsOf(ctx context.Context, id string) (*shardedSale, error) {
	cfg, err := g.saleConfig(ctx, id)
	switch {
	case errors.Is(err, domain.ErrSaleNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case cfg.Shards <= 1:
		return nil, nil
	}
	return g.sharded(cfg), nil
}

// orderKeys names the keys of the shard (or the sale) that holds orderID:
// the shard is in the id (domain.ShardOrderID), so no lookup is needed. The
// shard count is not in the id; the tag search needs it, so it is read from
// the sale's configuration (cached). ok is false for an id that names no sale.
func (g *Gate) orderKeys(ctx context.Context, orderID string) (k keys, saleID string, ok bool, err error) {
	saleID, ok = domain.SaleOfOrder(orderID)
	if !ok || !domain.ValidID(orderID) {
		return keys{}, "", false, nil
	}
	i, sharded := domain.ShardOfOrder(orderID)
	if !sharded {
		return g.keys(saleID), saleID, true, nil
	}
	cfg, err := g.saleConfig(ctx, saleID)
	if errors.Is(err, domain.ErrSaleNotFound) {
		return keys{}, "", false, nil
	}
	if err != nil {
		return keys{}, "", false, err
	}
	if cfg.Shards <= 1 {
		// Not an id this sale makes; its classic keys will not have it.
		return g.keys(saleID), saleID, true, nil
	}
	if i >= cfg.Shards {
		return keys{}, "", false, nil
	}
	return g.sharded(cfg).keys[i], saleID, true, nil
}

// headFields are the fields of a sharded sale's head hash: the configuration
// as newSaleFields writes it, without the pool counters (they live in the
// shards; a reader that forgets to sum them sees no "remaining" and so a
// sold-out sale, never stock that is not there), plus the shard count.
func headFields(ev domain.SaleCreated, createdAt time.Time) []any {
	all := newSaleFields(ev, createdAt)
	out := make([]any, 0, len(all)+2)
	for i := 0; i < len(all); i += 2 {
		switch all[i] {
		case "remaining", "reserved", "paid", "expired":
			continue
		}
		out = append(out, all[i], all[i+1])
	}
	return append(out, "shards", ev.Shards)
}

// shardFields are the fields of shard i's hash when the sale opens: the
// sale's configuration (the purchase script reads window, limit and price
// from it, as from an unsharded sale's hash) with the shard's allocation as
// its stock and pool, and the shard's place.
func shardFields(ev domain.SaleCreated, createdAt time.Time, i int) []any {
	ev.Stock = domain.ShardInitial(ev.Stock, domain.ShardCount(ev.Shards), i)
	return append(newSaleFields(ev, createdAt), "shard", i, "shards", ev.Shards)
}

// encodeMove encodes the StockMoved of a move whose quantity the donor's
// script decides: the envelope's bytes before and after the quantity, which
// the script joins around the number it took. The placeholder is a number no
// sale can move (domain.MaxStock is 1e7), so it occurs once, in the payload.
func encodeMove(ev domain.StockMoved, at time.Time, md domain.Metadata) (pre, post string, err error) {
	const placeholder = 987654321987
	ev.Quantity = placeholder
	env, err := domain.EncodeWith(ev, at, md)
	if err != nil {
		return "", "", err
	}
	pre, post, ok := strings.Cut(string(env), `"quantity":`+strconv.Itoa(placeholder))
	if !ok || strings.Contains(post, strconv.Itoa(placeholder)) {
		return "", "", fmt.Errorf("encode StockMoved %s: placeholder not found once", ev.MoveID)
	}
	return pre + `"quantity":`, post, nil
}

// blockedKeys lists the blacklist copies of sales ids that the purchase
// scripts check: each sale's own and, for a sharded sale, each shard's. The
// shard counts come from ShardsKey, which CreateSale writes before it lists
// the sale, so a Block that lists a sale being created finds its shards.
func (g *Gate) blockedKeys(ctx context.Context, ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	counts, err := g.rdb.HMGet(ctx, g.ShardsKey(), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read shard counts: %w", err)
	}
	for j, id := range ids {
		out = append(out, g.keys(id).blocked)
		s, _ := counts[j].(string)
		n, _ := strconv.Atoi(s)
		for i := 0; n > 1 && i < n; i++ {
			out = append(out, shardKeys(g.cfg.Prefix, id, i, n).blocked)
		}
	}
	return out, nil
}
