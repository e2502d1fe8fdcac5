package commands

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/seckill/seckill/domain"
)

// The node-local half of the gate's protections. In a flash sale almost every
// request is refused, so the refusals this node can decide alone — sold out,
// ended, not started, rate limited, blocked — are answered from memory, without
// Redis. Memory only ever refuses: whatever it lets through, the purchase
// script decides again, so a stale memory can cost a missed sale for a moment
// (SoldOutTTL) but never an oversell.

// epoch anchors monoNow: time.Since reads the monotonic clock, which the
// sold-out flag needs (it measures freshness, not the gate's clock, which
// tests stop).
var epoch = time.Now()

func monoNow() int64 { return int64(time.Since(epoch)) }

// guardShards spreads the users of a sale over this many locks, so that
// concurrent requests rarely wait on each other.
const guardShards = 64

// sweepEvery is how often (gate time) a shard drops users it no longer needs.
const sweepEvery = 10 * time.Second

var shardSeed = maphash.MakeSeed()

// saleGuard is one sale's local state on this node.
type saleGuard struct {
	cfg                       SaleConfig
	lay                       *saleLayout // the sale's keys and shards, named once rather than per purchase
	startsMS, endsMS, userGap int64       // ms
	soldOutTTL                int64       // ns

	// soldOutUntil is the monotonic time (monoNow) until which this node
	// answers sold_out from memory; 0 when the sale is not known sold out.
	soldOutUntil atomic.Int64
	// ended is final: a sale never reopens.
	ended atomic.Bool

	shards [guardShards]userShard
}

// userShard holds the users of a sale whose hash falls in it.
type userShard struct {
	mu        sync.Mutex
	users     map[string]userEntry
	nextSweep int64    // gate ms
	_         [40]byte // keeps neighbouring shards' locks off one cache line
}

// userEntry is what this node remembers of one user in one sale.
type userEntry struct {
	// last is the gate time (ms) of the user's last attempt this node sent to
	// Redis; kept only while the sale has a per-user interval.
	last int64
	// orders are the user's orders this node made or was told of, by
	// idempotency key, so a retry is answered even when memory refuses
	// everything else.
	orders []knownOrder
}

type knownOrder struct {
	key string
	res Reservation
}

func (e *userEntry) order(key string) *Reservation {
	for i := range e.orders {
		if e.orders[i].key == key {
			return &e.orders[i].res
		}
	}
	return nil
}

func newSaleGuard(cfg SaleConfig, soldOutTTL time.Duration) *saleGuard {
	sg := &saleGuard{
		cfg: cfg, startsMS: cfg.StartsAt.UnixMilli(), endsMS: cfg.EndsAt.UnixMilli(),
		userGap: cfg.Protections.UserIntervalMS, soldOutTTL: int64(soldOutTTL),
	}
	for i := range sg.shards {
		sg.shards[i].users = map[string]userEntry{}
	}
	return sg
}

func (sg *saleGuard) shard(user string) *userShard {
	return &sg.shards[maphash.String(shardSeed, user)%guardShards]
}

// soldOut reports whether to answer sold_out from memory. When the flag has
// lapsed, exactly one caller gets false and asks Redis; the others keep
// answering sold_out until that answer refreshes or clears the flag.
func (sg *saleGuard) soldOut() bool {
	until := sg.soldOutUntil.Load()
	if until == 0 {
		return false
	}
	now := monoNow()
	if now < until {
		return true
	}
	return !sg.soldOutUntil.CompareAndSwap(until, now+sg.soldOutTTL)
}

func (sg *saleGuard) markSoldOut()  { sg.soldOutUntil.Store(monoNow() + sg.soldOutTTL) }
func (sg *saleGuard) clearSoldOut() { sg.soldOutUntil.Store(0) }

// check decides from memory what to do with user's purchase attempt under
// key at nowMS (gate time). ask is true when Redis must decide; otherwise res
// or err is the answer. The checks run cheapest and most common first; an
// order of the user this node knows comes before any refusal, so such a retry
// is answered even after the sell-out (README, "Protections"). prev is the
// user's previous attempt time, for unclaim.
func (sg *saleGuard) check(user, key string, nowMS int64) (res Reservation, ask bool, prev int64, err error) {
	sh := sg.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, known := sh.users[user]
	if o := e.order(key); known && o != nil {
		return sg.retry(sh, user, e, o, nowMS)
	}
	if sg.ended.Load() || nowMS >= sg.endsMS {
		return Reservation{}, false, e.last, domain.ErrEnded
	}
	if sg.soldOut() {
		return Reservation{}, false, e.last, domain.ErrSoldOut
	}
	prev = e.last
	if sg.userGap > 0 {
		if known && nowMS-e.last < sg.userGap {
			wait := min(sg.userGap, sg.userGap-(nowMS-e.last))
			return Reservation{}, false, prev, domain.RetryAfter(domain.ErrRateLimited, time.Duration(wait)*time.Millisecond)
		}
		e.last = nowMS
		sh.store(user, e, nowMS, sg.userGap)
	}
	return Reservation{}, true, prev, nil
}

// retry is check for a retry of an order o of user's this node knows; the
// caller holds sh.mu.
func (sg *saleGuard) retry(sh *userShard, user string, e userEntry, o *Reservation, nowMS int64) (res Reservation, ask bool, prev int64, err error) {
	if sg.userGap > 0 && nowMS-e.last < sg.userGap && nowMS < o.PayBy.UnixMilli() {
		// Within the interval, answer from memory rather than let a
		// hammering buyer reach Redis. The order has not expired (its
		// pay-by is ahead); its status lags only if the owner paid it in
		// the last interval, and the client polls the order anyway.
		res = *o
		res.Replayed = true
		return res, false, e.last, nil
	}
	// The script answers a replay before anything else, with the order's
	// current status.
	prev = e.last
	if sg.userGap > 0 {
		e.last = nowMS
		sh.users[user] = e
	}
	return Reservation{}, true, prev, nil
}

// remember records res as user's order under key, for the retries check
// answers. A replay was no attempt (the script does not count it), so
// remember of a replay puts the user's previous attempt time back: prev as
// check returned it, or -1 to leave it.
func (sg *saleGuard) remember(user, key string, res Reservation, nowMS, prev int64) {
	res.Replayed = false
	sh := sg.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[user]
	if prev >= 0 {
		e.last = prev
	}
	if o := e.order(key); o != nil {
		*o = res
	} else {
		e.orders = append(e.orders, knownOrder{key: key, res: res})
	}
	sh.store(user, e, nowMS, sg.userGap)
}

// unclaim puts back user's previous attempt time after an attempt whose
// outcome is unknown (Redis failed or timed out): whether the script counted
// it, the retry reaches the script, which knows.
func (sg *saleGuard) unclaim(user string, prev int64) {
	if sg.userGap == 0 {
		return
	}
	sh := sg.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.users[user]; ok {
		e.last = prev
		sh.users[user] = e
	}
}

// store puts e in the shard (the caller holds sh.mu) and, now and then, drops
// the users who need no memory any more: their interval has run out and
// their orders are past their pay-by time, after which a retry goes to Redis.
func (sh *userShard) store(user string, e userEntry, nowMS, gap int64) {
	sh.users[user] = e
	if nowMS < sh.nextSweep {
		return
	}
	sh.nextSweep = nowMS + sweepEvery.Milliseconds()
	for u, e := range sh.users {
		if nowMS-e.last < gap {
			continue
		}
		keep := e.orders[:0]
		for _, o := range e.orders {
			if nowMS < o.res.PayBy.UnixMilli() {
				keep = append(keep, o)
			}
		}
		if len(keep) == 0 {
			delete(sh.users, u)
			continue
		}
		e.orders = keep
		sh.users[u] = e
	}
}

// guard returns the local state of a sale, loading its configuration the
// first time. domain.ErrSaleNotFound for an unknown sale.
func (g *Gate) guard(ctx context.Context, id string) (*saleGuard, error) {
	if v, ok := g.guards.Load(id); ok {
		return v.(*saleGuard), nil
	}
	if !domain.ValidID(id) {
		return nil, domain.ErrSaleNotFound
	}
	// Unknown ids cost a Redis read each, so they count against admission.
	if err := g.admit(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.RedisTimeout)
	defer cancel()
	cfg, err := g.saleConfig(ctx, id)
	if err != nil {
		return nil, err
	}
	sg := newSaleGuard(cfg, g.cfg.SoldOutTTL)
	sg.lay = g.layout(cfg)
	v, _ := g.guards.LoadOrStore(id, sg)
	return v.(*saleGuard), nil
}

// loadedGuard returns the local state of a sale this node has seen, or nil.
func (g *Gate) loadedGuard(id string) *saleGuard {
	if v, ok := g.guards.Load(id); ok {
		return v.(*saleGuard)
	}
	return nil
}

func newAdmission(cfg GateConfig) *rate.Limiter {
	if cfg.AdmissionRPS <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(cfg.AdmissionRPS), cfg.AdmissionBurst)
}

// admit takes a token from the node's admission bucket, or says when to retry.
func (g *Gate) admit() error {
	if g.admission == nil || g.admission.Allow() {
		return nil
	}
	// The bucket refills one token per 1/rps: a client told to come back a
	// second later is spread over the next second's tokens.
	return domain.RetryAfter(domain.ErrRateLimited, time.Second)
}

// MemorySoldOut reports, changing nothing, whether this node answers a
// purchase of saleID sold_out from memory right now: the sale is loaded here,
// open, and its sold-out flag is fresh (a lapsed flag is false: the one
// Redis re-check stays Purchase's). excepted is true when Purchase would
// answer userID otherwise even then: userID is blocked, or this node knows an
// order of theirs under key (a retry gets its order). userID "" is nobody.
// The HTTP layer uses it to refuse before it verifies a token (README: a
// sold-out answer says nothing about who asks).
func (g *Gate) MemorySoldOut(saleID, userID, key string) (soldOut, excepted bool) {
	sg := g.loadedGuard(saleID)
	if sg == nil {
		return false, false
	}
	nowMS := g.clock.Now().UnixMilli()
	if nowMS < sg.startsMS || nowMS >= sg.endsMS || sg.ended.Load() {
		return false, false
	}
	if until := sg.soldOutUntil.Load(); until == 0 || monoNow() >= until {
		return false, false
	}
	if userID == "" {
		return true, false
	}
	if g.isBlocked(userID) {
		return true, true
	}
	sh := sg.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.users[userID]
	return true, ok && e.order(key) != nil
}
