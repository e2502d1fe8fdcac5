package http

import (
	"errors"
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The per-client-address limit (seed 002: "通过ip限制一定时间内的请求次数"): each
// client address may send RPS requests per second to /v1, with bursts of
// Burst, on this node. It sits in front of everything else, the JWT check
// included, so a script hammering from one address costs a map lookup per
// request. It is per node: behind a load balancer that spreads one address
// over N nodes, the address gets up to N times the rate.

// ClientLimitConfig configures the per-client-address limit.
type ClientLimitConfig struct {
	// RPS is the requests per second each client address may send; 0: off.
	RPS float64
	// Burst is how many requests an address may send at once; default
	// 2×RPS (at least 1).
	Burst int
	// TrustedProxies are the proxies (load balancers, CDN edges) whose
	// X-Forwarded-For is believed; see clientAddr. Empty: the peer's
	// address is the client's.
	TrustedProxies []netip.Prefix
	// MaxClients bounds the addresses remembered at once (memory); default
	// 1<<20. Idle addresses are forgotten as room is needed; past the bound
	// new addresses are let through rather than refused.
	MaxClients int
}

func (c ClientLimitConfig) validate() error {
	if c.RPS < 0 || math.IsNaN(c.RPS) || math.IsInf(c.RPS, 0) || c.Burst < 0 || c.MaxClients < 0 {
		return errors.New("http: ClientLimit: RPS, Burst and MaxClients must be finite and ≥ 0")
	}
	return nil
}

const clientShards = 64

// clientLimiter is a token bucket (x/time/rate) per client address, in
// shards so that concurrent requests rarely share a lock.
type clientLimiter struct {
	limit   rate.Limit
	burst   int
	trusted []netip.Prefix
	perMax  int // addresses per shard
	seed    maphash.Seed
	shards  [clientShards]clientShard
	now     func() time.Time
}

type clientShard struct {
	mu        sync.Mutex
	m         map[netip.Addr]*rate.Limiter
	nextSweep int // the size at which idle addresses are swept out next
}

func newClientLimiter(cfg ClientLimitConfig) *clientLimiter {
	if cfg.RPS == 0 {
		return nil
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(math.Ceil(2*cfg.RPS)))
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 1 << 20
	}
	l := &clientLimiter{
		limit: rate.Limit(cfg.RPS), burst: cfg.Burst, trusted: cfg.TrustedProxies,
		perMax: max(1, cfg.MaxClients/clientShards), seed: maphash.MakeSeed(), now: time.Now,
	}
	for i := range l.shards {
		l.shards[i].m = map[netip.Addr]*rate.Limiter{}
		l.shards[i].nextSweep = min(1024, l.perMax)
	}
	return l
}

// clientKey is what an address is limited as: an IPv4 address, or the /64
// of an IPv6 address, because one IPv6 subscriber is routinely handed a
// whole /64 and could otherwise send from a fresh address every time.
func clientKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// allow takes one request of key's budget, or says how long until it may.
func (l *clientLimiter) allow(key netip.Addr) (bool, time.Duration) {
	now := l.now()
	sh := &l.shards[maphash.Comparable(l.seed, key)%clientShards]
	sh.mu.Lock()
	lim, ok := sh.m[key]
	if !ok {
		if len(sh.m) >= sh.nextSweep {
			sh.sweep(now, l.burst, l.perMax)
		}
		if len(sh.m) >= l.perMax {
			// Full of busy addresses: let the newcomer through rather than
			// refuse someone who sent nothing yet.
			sh.mu.Unlock()
			return true, 0
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		sh.m[key] = lim
	}
	sh.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		// Refused requests do not use up the budget: the address may send
		// again when the next token comes, whatever it did meanwhile.
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets the addresses whose bucket is full again (idle long enough
// that forgetting them changes nothing), and sets when to sweep next.
func (sh *clientShard) sweep(now time.Time, burst, perMax int) {
	for k, lim := range sh.m {
		if lim.TokensAt(now) >= float64(burst) {
			delete(sh.m, k)
		}
	}
	sh.nextSweep = min(perMax, max(1024, 2*len(sh.m)))
}

// clientLimit is the middleware: 429 rate_limited with Retry-After and the
// exact wait in the body.
func (l *clientLimiter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := clientAddr(r, l.trusted)
		if !a.IsValid() {
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := l.allow(clientKey(a)); !ok {
			writeClientLimited(w, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeClientLimited(w http.ResponseWriter, wait time.Duration) {
	// Whole seconds, rounded up, so a client that obeys is never early.
	w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
	writeJSON(w, http.StatusTooManyRequests, errorBody{errorDetail{
		Code: "rate_limited", Message: "too many requests from this address",
		RetryAfterMS: int64((wait + time.Millisecond - 1) / time.Millisecond),
	}})
}
