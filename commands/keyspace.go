package commands

import (
	"strconv"
	"strings"
)

// Keyspace names every Redis key of a gate: the one place the layout is
// written down (docs/sharding.md draws it). The relay, the metrics and the
// tools take their keys from here.
//
// Every sale is a HEAD and n ≥ 1 SHARDS. The head ({sale:ID}:head) holds the
// configuration and the sale-level end; its outbox ({sale:ID}:outbox) gets
// SaleCreated and SaleEnded. Each shard is a complete sale-shaped keyspace
// under one hash tag (pool and counters, idempotency, units per user, expiry
// queue, outbox, orders, blacklist copy, rate-limit keys, moves), so that
// everything a purchase decides runs in one script on one Redis Cluster slot.
// A classic sale is a sale of one shard, whose tag is the head's: its keys
// are the ones every earlier version wrote, and its events share one stream.
type Keyspace struct {
	// Prefix is put before every key. Default "seckill:".
	Prefix string
}

// Sales is the set of every sale id the gate knows.
func (ks Keyspace) Sales() string { return ks.Prefix + "sales" }

// Outboxes is the set of every outbox stream key, read by the relay.
func (ks Keyspace) Outboxes() string { return ks.Prefix + "outboxes" }

// ShardCounts is the hash sale id → shard count. CreateSale writes it before
// the sale is listed in Sales, so that Block, which lists Sales and then
// reads this hash, knows every shard of every sale it lists.
func (ks Keyspace) ShardCounts() string { return ks.Prefix + "shards" }

// Blacklist is the set of blocked user ids.
func (ks Keyspace) Blacklist() string { return ks.Prefix + "blacklist" }

// BlacklistLock serialises the writers of the blacklist's copies (blacklist.go).
func (ks Keyspace) BlacklistLock() string { return ks.Prefix + "blacklist:lock" }

// Notify is the pub/sub channel on which the scripts and admin calls tell
// every node what it may answer from memory (RunWatcher).
func (ks Keyspace) Notify() string { return ks.Prefix + "gate" }

// HeadKeys are the keys of a sale's head.
type HeadKeys struct {
	Hash   string // configuration, shard count, the sale-level end
	Outbox string // SaleCreated, SaleEnded
	// Legacy is where versions before the one-path layout kept the head
	// (and, of a classic sale, everything else): readHead migrates it.
	Legacy string
}

// Head names the keys of sale id's head.
func (ks Keyspace) Head(id string) HeadKeys {
	base := ks.Prefix + "{sale:" + id + "}"
	return HeadKeys{Hash: base + ":head", Outbox: base + ":outbox", Legacy: base + ":sale"}
}

// ShardKeys are the keys of one shard of a sale.
type ShardKeys struct {
	Hash    string // configuration copy, pool and counters
	Idem    string // hash: "user|idempotency key" → order id
	Units   string // hash: user → units held in orders that did not expire
	Due     string // sorted set: reserved order id → pay-by (ms)
	Outbox  string // stream: one entry per script call, its events in fields "1", "2", …
	OrderPf string // prefix of the order hashes: OrderPf + order id
	Blocked string // set: users who may not buy in this sale (a copy of the blacklist)
	RLPf    string // prefix of the per-user rate-limit keys: RLPf + user
	Moves   string // hash: move id → "to qty at-ms", units debited here and not yet confirmed credited
	MovesIn string // hash: move id → qty, every move credited here (never pruned: a late credit must find it)
}

// Shard names the keys of shard i of sale id of n shards.
func (ks Keyspace) Shard(id string, i, n int) ShardKeys {
	tag := "sale:" + id
	if n > 1 {
		tag = ShardTag(id, i, n)
	}
	base := ks.Prefix + "{" + tag + "}"
	return ShardKeys{
		Hash:    base + ":sale",
		Idem:    base + ":idem",
		Units:   base + ":units",
		Due:     base + ":due",
		Outbox:  base + ":outbox",
		OrderPf: base + ":o:",
		Blocked: base + ":blocked",
		RLPf:    base + ":rl:",
		Moves:   base + ":moves",
		MovesIn: base + ":movesin",
	}
}

// Order is the key of an order's hash on this shard.
func (k ShardKeys) Order(orderID string) string { return k.OrderPf + orderID }

// SaleOfKey returns the sale id in a key "<prefix>{sale:ID}:..." or, of a
// shard of a sale of several, "<prefix>{sale:ID:...}:..." (ids have no ':').
func (ks Keyspace) SaleOfKey(key string) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(key, ks.Prefix), "{sale:")
	if i := strings.IndexAny(rest, "}:"); i >= 0 {
		return rest[:i]
	}
	return rest
}

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

// ShardTag is the hash tag of shard i of n (n > 1) of a sale: "sale:ID:i",
// or "sale:ID:i:k" with the smallest k ≥ 1 that puts the tag's slot in the
// i-th n-th of the slot space. Tags of one sale therefore fall in distinct
// ranges of slots, and a cluster whose masters own contiguous ranges (as
// redis-cli --cluster create assigns them) spreads the shards over its
// masters instead of leaving that to chance (three random slots land on three
// different of three masters only 2 times in 9). The search is a pure
// function of the sale id, so every node, the restore and the tests find the
// same tags.
func ShardTag(saleID string, i, n int) string {
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

// idemField is the field of the idempotency hash that names one purchase
// attempt: the user and their Idempotency-Key ("" for none). Purchase and
// Restore must agree on it, or a restored gate would not recognise a retry.
func idemField(user, key string) string { return user + "|" + key }
