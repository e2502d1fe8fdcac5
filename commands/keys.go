package commands

// keys names the Redis keys of one sale. All of them carry the hash tag
// {sale:ID} so a script touching them runs on one Redis Cluster slot.
type keys struct {
	sale    string // hash: configuration and counters
	idem    string // hash: "user|idempotency key" → order id
	units   string // hash: user → units held in orders that did not expire
	due     string // sorted set: reserved order id → pay-by (ms)
	outbox  string // stream: one entry per command, its events in fields "1", "2", …
	orderPf string // prefix of the order hashes: orderPf + order id
	blocked string // set: users who may not buy in this sale (a copy of the blacklist)
	rlPf    string // prefix of the per-user rate-limit keys: rlPf + user
	// Shards of a sharded sale only (shard.go, docs/sharding.md):
	moves   string // hash: move id → "to qty at-ms", units debited here and not yet confirmed credited
	movesIn string // hash: move id → qty, every move credited here (never pruned: a late credit must find it)
}

func saleKeys(prefix, saleID string) keys {
	return keysAt(prefix + "{sale:" + saleID + "}")
}

// keysAt names the keys under base, "<prefix>{<hash tag>}": a sale's, or one
// shard's of a sharded sale (shardKeys), which have the same layout.
func keysAt(base string) keys {
	return keys{
		sale:    base + ":sale",
		idem:    base + ":idem",
		units:   base + ":units",
		due:     base + ":due",
		outbox:  base + ":outbox",
		orderPf: base + ":o:",
		blocked: base + ":blocked",
		rlPf:    base + ":rl:",
		moves:   base + ":moves",
		movesIn: base + ":movesin",
	}
}

func (k keys) order(orderID string) string { return k.orderPf + orderID }

// rl is the key that holds user's last purchase attempt while the sale's
// per-user interval runs.
func (k keys) rl(user string) string { return k.rlPf + user }
