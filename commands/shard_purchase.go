package commands

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/seckill/seckill/domain"
)

// maxPullRounds bounds how often one purchase pulls stock to its home shard.
// A round fails to serve the buyer only when others of the same home shard
// bought the pulled units in between — rare, since the pulled units are
// credited and reserved in one script — so two rounds nearly always settle it.
const maxPullRounds = 3

// purchaseSharded is Purchase for a sharded sale, from where Redis must
// decide (purchase.go has refused what memory could). The buyer's home shard
// decides everything as purchase.lua does for an unsharded sale: blacklist,
// retry, window, rate limit, per-user limit, stock. The common case is one
// round trip. Only when the home pool cannot serve the quantity does the
// purchase PULL: it moves the missing units from other shards (fullest first,
// every shard before calling the sale sold out) and asks the home shard again
// with the moves, which that script credits before it decides. The user never
// leaves their home shard, so the per-user limit and the retries stay exact,
// and the order's events are written once, by the home shard.
func (g *Gate) purchaseSharded(ctx context.Context, sg *saleGuard, cmd Purchase, now time.Time, prevAttempt int64) (Reservation, error) {
	sale := sg.cfg
	ss := g.sharded(sale)
	nowMS := now.UnixMilli()
	home := domain.HomeShard(cmd.UserID, ss.n)
	k := ss.keys[home]
	payBy := now.Add(sale.PayWithin)
	orderID := domain.ShardOrderID(sale.ID, home, newID())
	amount := sale.PriceCents * cmd.Quantity
	reserved, placed, err := placementEvents(sale, cmd, orderID, amount, now, payBy, domain.MetadataFrom(ctx))
	if err != nil {
		return Reservation{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, g.cfg.RedisTimeout)
	defer cancel()
	keys := []string{k.sale, k.idem, k.units, k.due, k.outbox, k.order(orderID), k.rl(cmd.UserID), k.blocked, k.movesIn}
	// The sale id is left out (''), so the shard does not announce a
	// sell-out when its own pool empties: the sale may have stock elsewhere.
	args := []any{ms(now), cmd.UserID, idemField(cmd.UserID, cmd.IdempotencyKey), cmd.Quantity, orderID,
		ms(payBy), amount, k.orderPf, reserved, placed, g.NotifyChannel(), ""}
	run := func(cont bool, credits []any) (reply, error) {
		a := args
		if cont {
			a = append(append(slices.Clip(args), "1"), credits...)
		}
		v, err := g.purchase.Run(rctx, g.rdb, keys, a...).Result()
		if err != nil {
			return nil, fmt.Errorf("purchase in sale %s (shard %d): %w", sale.ID, home, err)
		}
		return toReply(v)
	}
	r, err := run(false, nil)
	if err != nil {
		sg.unclaim(cmd.UserID, prevAttempt)
		return Reservation{}, err
	}
	for round := 0; round < maxPullRounds; round++ {
		code := r.str(0)
		if code != "sold_out" && code != "insufficient_stock" {
			break
		}
		var have int64
		if code == "insufficient_stock" {
			have = r.int(1)
		}
		ss.left[home].Store(have)
		credits, from, got, closed, err := g.pull(rctx, ss, home, cmd.Quantity-have, now)
		if err != nil {
			// Moves made so far stay pending on their donors; the sweeper
			// credits them to this home shard (MoveRecoverAfter).
			return Reservation{}, err
		}
		if got == 0 {
			switch {
			case closed:
				sg.ended.Store(true)
				return Reservation{}, domain.ErrEnded
			case code == "sold_out" && round == 0:
				// Every shard was empty when the pull asked it.
				sg.markSoldOut()
				return Reservation{}, domain.ErrSoldOut
			}
			break
		}
		if r, err = run(true, credits); err != nil {
			return Reservation{}, err
		}
		if r.str(0) != "sale_not_found" {
			// Credited (or, the home shard having been collected by an end,
			// credited by that end before it collected): nothing is in flight.
			if err := g.clearMoves(rctx, ss, from, movesOf(credits)); err != nil {
				return Reservation{}, err
			}
		}
	}
	switch r.str(0) {
	case "reserved":
		res := Reservation{OrderID: orderID, SaleID: sale.ID, Status: domain.StatusReserved,
			Quantity: cmd.Quantity, PayBy: payBy.UTC().Truncate(time.Millisecond)}
		sg.remember(cmd.UserID, cmd.IdempotencyKey, res, nowMS, -1)
		ss.left[home].Store(r.int(5))
		sg.clearSoldOut()
		return res, nil
	case "existing":
		res := Reservation{OrderID: r.str(1), SaleID: sale.ID, Status: r.str(2),
			PayBy: fromMS(r.str(3)), Quantity: r.int(4), Replayed: true}
		sg.remember(cmd.UserID, cmd.IdempotencyKey, res, nowMS, prevAttempt)
		return res, nil
	case "ended":
		sg.ended.Store(true)
	case "insufficient_stock":
		sg.clearSoldOut()
	case "not_yet_released":
		// Staged release is refused for sharded sales (SaleSpec.Validate);
		// answered as purchase.go would, should a sale have it anyway.
		wait := max(r.int(1), sg.userGap)
		return Reservation{}, domain.RetryAfter(domain.ErrNotYetReleased, time.Duration(wait)*time.Millisecond)
	case "rate_limited":
		return Reservation{}, domain.RetryAfter(domain.ErrRateLimited, time.Duration(max(r.int(1), 1))*time.Millisecond)
	}
	return Reservation{}, scriptError(r.str(0))
}

// pull moves up to need units to shard home from the other shards of a
// sharded sale, fullest first as far as this node knows, one move per donor
// that has any, until it has need units or has asked every shard. It returns
// the moves as purchase.lua's credit pairs (id, quantity) with their donors,
// the units moved, and whether a donor was closed (the sale is ending).
func (g *Gate) pull(ctx context.Context, ss *shardedSale, home int, need int64, now time.Time) (credits []any, from []int, got int64, closed bool, err error) {
	for _, d := range ss.donors(home) {
		if got >= need {
			break
		}
		id, took, isClosed, err := g.moveOut(ctx, ss, d, home, 1, need-got, now)
		if err != nil {
			return credits, from, got, false, err
		}
		if isClosed {
			closed = true
			continue
		}
		if took > 0 {
			credits = append(credits, id, took)
			from = append(from, d)
			got += took
		}
	}
	return credits, from, got, closed, nil
}

// donors lists the shards other than home, those this node last saw fullest
// first; among equals, the next ones after home first, so that the users of
// different home shards do not all start with the same donor.
func (ss *shardedSale) donors(home int) []int {
	out := make([]int, 0, ss.n-1)
	for j := 1; j < ss.n; j++ {
		out = append(out, (home+j)%ss.n)
	}
	slices.SortStableFunc(out, func(a, b int) int { return cmp.Compare(ss.left[b].Load(), ss.left[a].Load()) })
	return out
}

// movesOf returns the move ids of credit pairs.
func movesOf(credits []any) []string {
	ids := make([]string, 0, len(credits)/2)
	for i := 0; i < len(credits); i += 2 {
		ids = append(ids, credits[i].(string))
	}
	return ids
}
