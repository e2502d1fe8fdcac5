package commands

import (
	"time"

	"github.com/seckill/seckill/domain"
)

// The fields of the head and shard hashes. CreateSale writes them; Restore
// writes them too and then sets the counters the log folds to, so a field
// added here reaches both (TestRestoreFromLog compares a restored gate with
// the original key by key).

// saleFields are a sale's configuration from SaleCreated and its counters at
// zero: the hash of a classic sale before the one-path layout, and today the
// body of every shard's hash.
func saleFields(ev domain.SaleCreated, createdAt time.Time) []any {
	return []any{
		"name", ev.Name, "stock", ev.Stock, "price", ev.PriceCents,
		"starts", ms(ev.StartsAt), "ends", ms(ev.EndsAt), "limit", ev.PerUserLimit,
		"pay_within", ev.PayWithinS, "currency", ev.Currency, "remaining", ev.Stock, "created_at", ms(createdAt),
		"reserved", 0, "paid", 0, "expired", 0, "ended", 0,
		"user_interval", ev.UserIntervalMS, "release_step", ev.ReleaseStep,
		"release_interval", ev.ReleaseIntervalMS, "require_token", boolField(ev.RequireToken),
		"challenge_bits", ev.ChallengeBits, "release_mode", ev.ReleaseMode,
	}
}

// poolCounters are the fields of saleFields that only a shard keeps.
var poolCounters = map[any]bool{"remaining": true, "reserved": true, "paid": true, "expired": true}

// headFields are the fields of a sale's head: the configuration without the
// pool counters (they live in the shards; a reader that forgets to sum them
// sees no "remaining" and so a sold-out sale, never stock that is not
// there), plus the shard count.
func headFields(ev domain.SaleCreated, createdAt time.Time) []any {
	all := saleFields(ev, createdAt)
	out := make([]any, 0, len(all)+2)
	for i := 0; i < len(all); i += 2 {
		if !poolCounters[all[i]] {
			out = append(out, all[i], all[i+1])
		}
	}
	return append(out, "shards", domain.ShardCount(ev.Shards))
}

// shardFields are the fields of shard i's hash when the sale opens: the
// configuration (the purchase script reads window, limit and price from it)
// with the shard's allocation as its stock and pool, and the shard's place.
// The "shard" field also tells a shard from the legacy head (migrate_head.lua).
func shardFields(ev domain.SaleCreated, createdAt time.Time, i int) []any {
	n := domain.ShardCount(ev.Shards)
	ev.Stock = domain.ShardInitial(ev.Stock, n, i)
	return append(saleFields(ev, createdAt), "shard", i, "shards", n)
}

func boolField(b bool) int {
	if b {
		return 1
	}
	return 0
}
