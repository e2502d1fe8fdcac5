package commands

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
)

// The blacklist: users who may not buy, in any sale. It lives in three places,
// each for a reason:
//
//   - the set <prefix>blacklist is the truth, listed by the admin API;
//   - every sale's {sale:ID}:blocked set is a copy the purchase script checks,
//     because a script may only touch keys of its sale's slot (Redis Cluster)
//     and a node whose local copy missed a notification must not let a
//     blocked user through;
//   - each node's in-memory copy answers blocked without Redis, kept fresh by
//     notifications and a periodic re-read (RunWatcher).
//
// Block and Unblock write the set first and the sales' copies second;
// CreateSale registers a new sale first and copies the set second. The
// copying and the blocking hold one lock (Keyspace.BlacklistLock), so one
// sees what the other wrote: a sale created while a user is being blocked
// gets the user from one side or the other, and one created while a user is
// being unblocked does not keep a stale copy of them (issue 15).

// NotifyChannel is the pub/sub channel on which the gate's scripts and admin
// calls tell every node what it may answer from memory (RunWatcher).
func (g *Gate) NotifyChannel() string { return g.ks.Notify() }

// blacklistLockTTL bounds how long a holder that died keeps others waiting.
const blacklistLockTTL = 5 * time.Second

// unlockScript releases a lock only if its holder still holds it.
var unlockScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// withBlacklistLock runs fn holding the lock of the blacklist's copies.
func (g *Gate) withBlacklistLock(ctx context.Context, fn func() error) error {
	key, token := g.ks.BlacklistLock(), newID()
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		ok, err := g.rdb.SetNX(ctx, key, token, blacklistLockTTL).Result()
		if err != nil {
			return fmt.Errorf("lock blacklist: %w", err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lock blacklist: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
	defer func() { _ = unlockScript.Run(context.WithoutCancel(ctx), g.rdb, []string{key}, token).Err() }()
	return fn()
}

// Block puts user on the blacklist: from now on every purchase of theirs is
// refused with domain.ErrBlocked. Orders they already hold stay. Blocking a
// blocked user is not an error. A *domain.ValidationError for a bad id.
func (g *Gate) Block(ctx context.Context, user string) error {
	return g.setBlocked(ctx, user, true)
}

// Unblock takes user off the blacklist. Unblocking a user who is not blocked
// is not an error.
func (g *Gate) Unblock(ctx context.Context, user string) error {
	return g.setBlocked(ctx, user, false)
}

func (g *Gate) setBlocked(ctx context.Context, user string, blocked bool) error {
	if err := domain.ValidUserID(user); err != nil {
		return err
	}
	op, verb := "SADD", "block"
	if !blocked {
		op, verb = "SREM", "unblock"
	}
	return g.withBlacklistLock(ctx, func() error {
		if err := g.rdb.Do(ctx, op, g.ks.Blacklist(), user).Err(); err != nil {
			return fmt.Errorf("%s %s: %w", verb, user, err)
		}
		return g.setBlockedInSales(ctx, op, verb, user, blocked)
	})
}

// setBlockedInSales applies a Block or Unblock to every sale's copies.
func (g *Gate) setBlockedInSales(ctx context.Context, op, verb, user string, blocked bool) error {
	ids, err := g.SaleIDs(ctx)
	if err != nil {
		return err
	}
	copies, err := g.blockedKeys(ctx, ids)
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, user, err)
	}
	pipe := g.rdb.Pipeline()
	for _, key := range copies {
		pipe.Do(ctx, op, key, user)
	}
	pipe.Publish(ctx, g.NotifyChannel(), verb+" "+user)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("%s %s in %d sales: %w", verb, user, len(ids), err)
	}
	g.noteBlocked(user, blocked)
	return nil
}

// Blacklist lists the blocked users, sorted.
func (g *Gate) Blacklist(ctx context.Context) ([]string, error) {
	users, err := g.rdb.SMembers(ctx, g.ks.Blacklist()).Result()
	if err != nil {
		return nil, fmt.Errorf("read blacklist: %w", err)
	}
	slices.Sort(users)
	return users, nil
}

// RefreshBlacklist replaces this node's copy of the blacklist with Redis's.
func (g *Gate) RefreshBlacklist(ctx context.Context) error {
	users, err := g.rdb.SMembers(ctx, g.ks.Blacklist()).Result()
	if err != nil {
		return fmt.Errorf("read blacklist: %w", err)
	}
	m := make(map[string]struct{}, len(users))
	for _, u := range users {
		m[u] = struct{}{}
	}
	g.blocked.Store(&m)
	return nil
}

// isBlocked answers from this node's copy: one atomic load and a map lookup.
func (g *Gate) isBlocked(user string) bool {
	m := g.blocked.Load()
	if m == nil || len(*m) == 0 {
		return false
	}
	_, ok := (*m)[user]
	return ok
}

// noteBlocked updates this node's copy. The copy is replaced, never changed in
// place, so readers need no lock; blacklists are short and change rarely.
func (g *Gate) noteBlocked(user string, blocked bool) {
	for {
		old := g.blocked.Load()
		var m map[string]struct{}
		if old != nil {
			m = maps.Clone(*old)
		}
		if m == nil {
			m = map[string]struct{}{}
		}
		if blocked {
			m[user] = struct{}{}
		} else {
			delete(m, user)
		}
		if g.blocked.CompareAndSwap(old, &m) {
			return
		}
	}
}

// copyBlacklist gives a new sale its copy of the blacklist (see above).
func (g *Gate) copyBlacklist(ctx context.Context, saleID string) error {
	return g.withBlacklistLock(ctx, func() error { return g.copyBlacklistLocked(ctx, saleID) })
}

func (g *Gate) copyBlacklistLocked(ctx context.Context, saleID string) error {
	users, err := g.rdb.SMembers(ctx, g.ks.Blacklist()).Result()
	if err != nil {
		return fmt.Errorf("read blacklist: %w", err)
	}
	if g.afterBlacklistRead != nil {
		g.afterBlacklistRead() // a test widens the race here
	}
	if len(users) == 0 {
		return nil
	}
	args := make([]any, len(users))
	for i, u := range users {
		args[i] = u
	}
	copies, err := g.blockedKeys(ctx, []string{saleID})
	if err != nil {
		return fmt.Errorf("copy blacklist to sale %s: %w", saleID, err)
	}
	// One command per copy: a sharded sale's copies are in different slots.
	pipe := g.rdb.Pipeline()
	for _, key := range copies {
		pipe.SAdd(ctx, key, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("copy blacklist to sale %s: %w", saleID, err)
	}
	return nil
}

// blockedKeys lists the blacklist copies of sales ids that the purchase
// script checks: each shard's. The shard counts come from ShardCounts, which
// CreateSale writes before it lists the sale, so a Block that lists a sale
// being created finds its shards.
func (g *Gate) blockedKeys(ctx context.Context, ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	counts, err := g.rdb.HMGet(ctx, g.ks.ShardCounts(), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read shard counts: %w", err)
	}
	for j, id := range ids {
		s, _ := counts[j].(string)
		n, _ := strconv.Atoi(s)
		n = max(n, 1) // sales of earlier versions are not in ShardCounts: classic
		for i := range n {
			out = append(out, g.ks.Shard(id, i, n).Blocked)
		}
	}
	return out, nil
}
