package http

import (
	"hash/maphash"
	"sync"
	"time"
)

// jwtLeeway is the clock skew a token's expiry is allowed (NewAuthenticator);
// the cache below keeps an identity exactly as long as the parser would.
const jwtLeeway = 5 * time.Second

// verifiedCache remembers the tokens this node has verified. During a sale a
// client sends the same bearer token many times within seconds (seed 002:
// most clicks are repeats), and parsing and checking an HS256 JWT is most of
// what a sold_out answer costs; a hit is a hash and a map lookup. Only tokens
// that passed verification enter, keyed by their exact bytes, and only until
// their expiry (plus the parser's leeway), so the cache changes no answer.
type verifiedCache struct {
	seed   maphash.Seed
	shards [16]verifiedShard
}

type verifiedShard struct {
	mu sync.RWMutex
	m  map[string]verifiedEntry
}

type verifiedEntry struct {
	id    Identity
	until int64 // unix ns: the token's expiry plus the leeway
}

// verifiedPerShard bounds the cache: 16 shards × 1024 tokens of ~250 bytes
// (the token's bytes are the key) is about 4 MB at most. A sold-out answer
// verifies no token (http/purchase.go), so the tokens here are those of
// users the node let through — buyers paying, polling their orders — and
// a quarter of the former 65,536 holds them while keeping the API node's
// heap small (docs/performance.md, "The API node's memory").
const verifiedPerShard = 1024

func newVerifiedCache() *verifiedCache {
	c := &verifiedCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[string]verifiedEntry{}
	}
	return c
}

func (c *verifiedCache) shard(raw string) *verifiedShard {
	return &c.shards[maphash.String(c.seed, raw)%uint64(len(c.shards))]
}

func (c *verifiedCache) get(raw string, now time.Time) (Identity, bool) {
	sh := c.shard(raw)
	sh.mu.RLock()
	e, ok := sh.m[raw]
	sh.mu.RUnlock()
	if !ok || now.UnixNano() >= e.until {
		return Identity{}, false
	}
	return e.id, true
}

func (c *verifiedCache) put(raw string, id Identity, expires time.Time) {
	sh := c.shard(raw)
	sh.mu.Lock()
	if len(sh.m) >= verifiedPerShard {
		// Full: start over rather than track recency; the cost is one
		// verification per live token.
		clear(sh.m)
	}
	sh.m[raw] = verifiedEntry{id: id, until: expires.Add(jwtLeeway).UnixNano()}
	sh.mu.Unlock()
}
