package commands

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/seckill/seckill/domain"
)

// Purchase is the command a shopper sends to buy Quantity units of a sale.
type Purchase struct {
	SaleID string
	UserID string
	// Quantity defaults to 1 (domain.DefaultQuantity) when 0. The HTTP API
	// refuses an explicit 0 before it gets here (domain.PurchaseQuantity).
	Quantity int64
	// IdempotencyKey names one purchase attempt of this user in this sale. A
	// purchase repeated with the same key (or, without a key, any repeat by the
	// same user) answers with the order the first one made. Distinct keys are
	// distinct attempts, each subject to the per-user limit.
	IdempotencyKey string
	// Token is the purchase token (PurchaseToken), required by sales whose
	// Protections.RequireToken is set.
	Token string
}

// Reservation is the gate's answer to a purchase that holds an order.
type Reservation struct {
	OrderID  string    `json:"order_id"`
	SaleID   string    `json:"sale_id"`
	Status   string    `json:"status"`
	Quantity int64     `json:"quantity"`
	PayBy    time.Time `json:"pay_by"`
	// Replayed is true when the purchase was a retry answered with an existing order.
	Replayed bool `json:"-"`
}

// Purchase decides a purchase: from this node's memory when it can refuse
// alone (guard.go), else by running the purchase script once. It returns a
// Reservation, or one of domain.ErrSoldOut, ErrInsufficientStock,
// ErrNotStarted, ErrEnded, ErrLimitReached, ErrSaleNotFound, ErrBlocked,
// ErrTokenRequired, ErrRateLimited, ErrNotYetReleased, or a
// *domain.ValidationError. ErrRateLimited, ErrNotYetReleased and ErrNotStarted
// come as a *domain.RetryError that says when to try again.
func (g *Gate) Purchase(ctx context.Context, cmd Purchase) (Reservation, error) {
	if cmd.Quantity == 0 {
		cmd.Quantity = domain.DefaultQuantity
	}
	if err := domain.ValidatePurchase(cmd.UserID, cmd.Quantity, cmd.IdempotencyKey); err != nil {
		return Reservation{}, err
	}
	sg, err := g.guard(ctx, cmd.SaleID)
	if err != nil {
		return Reservation{}, err
	}
	sale := sg.cfg
	now := g.clock.Now()
	nowMS := now.UnixMilli()
	// Cheapest first: the clock, then this node's memory; Redis last.
	if nowMS < sg.startsMS {
		return Reservation{}, domain.RetryAfter(domain.ErrNotStarted, time.Duration(sg.startsMS-nowMS)*time.Millisecond)
	}
	if g.isBlocked(cmd.UserID) {
		return Reservation{}, domain.ErrBlocked
	}
	if sale.Protections.RequireToken && !g.tokens.verify(cmd.Token, sale.ID, cmd.UserID, now) {
		return Reservation{}, domain.ErrTokenRequired
	}
	res, ask, prevAttempt, err := sg.check(cmd.UserID, cmd.IdempotencyKey, nowMS)
	if !ask {
		return res, err
	}
	if err := g.admit(); err != nil {
		return Reservation{}, err
	}
	return g.purchaseAtHome(ctx, sg, cmd, now, prevAttempt)
}

// maxPullRounds bounds how often one purchase pulls stock to its home shard.
// A round fails to serve the buyer only when others of the same home shard
// bought the pulled units in between — rare, since the pulled units are
// credited and reserved in one script — so two rounds nearly always settle it.
const maxPullRounds = 3

// purchaseAtHome is Purchase from where Redis must decide (memory has
// refused what it could). The buyer's home shard decides everything in one
// script call, batched with the shard's concurrent purchases: blacklist,
// retry, window, rate limit, per-user limit, stock. Only when the home pool
// cannot serve the quantity, in a sale of several shards, does the purchase
// PULL: it moves the missing units from other shards and asks the home shard
// again with the moves, which the script credits before it decides. The user
// never leaves their home shard, so the per-user limit and the retries stay
// exact, and the order's events are written once, by the home shard.
func (g *Gate) purchaseAtHome(ctx context.Context, sg *saleGuard, cmd Purchase, now time.Time, prevAttempt int64) (Reservation, error) {
	sale, lay := sg.cfg, sg.lay
	home := lay.shards[domain.HomeShard(cmd.UserID, lay.n())]
	payBy := now.Add(sale.PayWithin)
	orderID := domain.ShardOrderID(sale.ID, home.i, newID())
	amount := sale.PriceCents * cmd.Quantity
	reserved, placed, err := placementEvents(sale, cmd, orderID, amount, now, payBy, domain.MetadataFrom(ctx))
	if err != nil {
		return Reservation{}, err
	}
	req := newPurchaseReq(ms(now), cmd.UserID, idemField(cmd.UserID, cmd.IdempotencyKey), cmd.Quantity, orderID,
		ms(payBy), amount, reserved, placed)
	r, err := home.purchase(req)
	if err == nil && lay.n() > 1 {
		r, err = g.pullAndRetry(ctx, sg, home, req, r, cmd.Quantity, now)
	}
	if err != nil {
		sg.unclaim(cmd.UserID, prevAttempt)
		return Reservation{}, fmt.Errorf("purchase in sale %s: %w", sale.ID, err)
	}
	nowMS := now.UnixMilli()
	// Every answer that tells something about the pool updates this node's
	// memory, so a node learns a sell-out even from a missed notification.
	switch r.str(0) {
	case "reserved":
		res := Reservation{OrderID: orderID, SaleID: sale.ID, Status: domain.StatusReserved,
			Quantity: cmd.Quantity, PayBy: payBy.UTC().Truncate(time.Millisecond)}
		sg.remember(cmd.UserID, cmd.IdempotencyKey, res, nowMS, -1)
		home.left.Store(r.int(5))
		if lay.n() == 1 && r.int(5) == 0 {
			sg.markSoldOut()
		} else {
			sg.clearSoldOut()
		}
		return res, nil
	case "existing":
		res := Reservation{OrderID: r.str(1), SaleID: sale.ID, Status: r.str(2),
			PayBy: fromMS(r.str(3)), Quantity: r.int(4), Replayed: true}
		sg.remember(cmd.UserID, cmd.IdempotencyKey, res, nowMS, prevAttempt)
		return res, nil
	case "sold_out":
		if lay.n() == 1 {
			sg.markSoldOut()
		}
	case "ended":
		sg.ended.Store(true)
	case "insufficient_stock":
		sg.clearSoldOut()
	case "not_yet_released":
		sg.clearSoldOut()
		// This attempt counted against the user's interval, so the next one
		// that can succeed is at the later of the two.
		wait := max(r.int(1), sg.userGap)
		return Reservation{}, domain.RetryAfter(domain.ErrNotYetReleased, time.Duration(wait)*time.Millisecond)
	case "rate_limited":
		return Reservation{}, domain.RetryAfter(domain.ErrRateLimited, time.Duration(max(r.int(1), 1))*time.Millisecond)
	}
	return Reservation{}, scriptError(r.str(0))
}

// pullAndRetry serves a purchase its home shard could not: it moves units
// from the other shards and asks the home shard again with them, up to
// maxPullRounds times. r is the home shard's first answer.
func (g *Gate) pullAndRetry(ctx context.Context, sg *saleGuard, home *shard, req *purchaseReq, r reply, qty int64, now time.Time) (reply, error) {
	lay := sg.lay
	rctx, cancel := context.WithTimeout(ctx, g.cfg.RedisTimeout)
	defer cancel()
	for round := 0; round < maxPullRounds; round++ {
		code := r.str(0)
		if code != "sold_out" && code != "insufficient_stock" {
			return r, nil
		}
		var have int64
		if code == "insufficient_stock" {
			have = r.int(1)
		}
		home.left.Store(have)
		credits, from, got, closed, err := g.pull(rctx, lay, home, qty-have, now)
		if err != nil {
			// Moves made so far stay pending on their donors; the sweeper
			// credits them to this home shard (MoveRecoverAfter).
			return nil, err
		}
		if got == 0 {
			switch {
			case closed:
				return reply{"ended"}, nil
			case code == "sold_out" && round == 0:
				// Every shard was empty when the pull asked it. This node
				// remembers it; it is not announced, since units on their
				// way between two shards were in neither, and no notice
				// would follow them when they land.
				sg.markSoldOut()
			}
			return r, nil
		}
		if r, err = home.purchase(req.retry(credits)); err != nil {
			return nil, err
		}
		if r.str(0) != "sale_not_found" {
			// Credited (or, the home shard having been collected by an end,
			// credited by that end before it collected): nothing is in flight.
			if err := g.clearMoves(rctx, lay, from, movesOf(credits)); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// pull moves up to need units to shard home from the other shards, fullest
// first as far as this node knows, one move per donor that has any, until
// it has need units or has asked every shard. It returns the moves as
// purchase.lua's credit pairs (id, quantity) with their donors, the units
// moved, and whether a donor was closed (the sale is ending).
func (g *Gate) pull(ctx context.Context, lay *saleLayout, home *shard, need int64, now time.Time) (credits []any, from []*shard, got int64, closed bool, err error) {
	for _, d := range lay.donors(home.i) {
		if got >= need {
			break
		}
		id, took, isClosed, err := g.moveOut(ctx, lay, d, home, 1, need-got, now)
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

// movesOf returns the move ids of credit pairs.
func movesOf(credits []any) []string {
	ids := make([]string, 0, len(credits)/2)
	for i := 0; i < len(credits); i += 2 {
		ids = append(ids, credits[i].(string))
	}
	return ids
}

// purchaseReq is one purchase in a batch: its arguments to purchase.lua and,
// once its batch has run, the script's answer.
type purchaseReq struct {
	wake  chan []*purchaseReq
	args  []any
	reply reply
	err   error
}

func (r *purchaseReq) wakeup() chan []*purchaseReq { return r.wake }

// purchaseArgs is the number of arguments of one purchase before its moves.
const purchaseArgs = 11

func newPurchaseReq(now, user, idem string, qty int64, orderID, payBy string, amount int64, reserved, placed []byte) *purchaseReq {
	return &purchaseReq{wake: make(chan []*purchaseReq, 1),
		args: []any{now, user, idem, qty, orderID, payBy, amount, reserved, placed, "0", 0}}
}

// retry is the same purchase asked again after a pull, with the moves to credit.
func (r *purchaseReq) retry(credits []any) *purchaseReq {
	args := append(slices.Clip(r.args[:purchaseArgs-2]), "1", len(credits)/2)
	return &purchaseReq{wake: make(chan []*purchaseReq, 1), args: append(args, credits...)}
}

// purchase decides req in the shard's next batch.
func (sh *shard) purchase(req *purchaseReq) (reply, error) {
	sh.purchases.do(req)
	return req.reply, req.err
}

// execPurchases decides a batch of purchases of shard sh in one script call.
func (g *Gate) execPurchases(sh *shard, batch []*purchaseReq) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RedisTimeout)
	defer cancel()
	k := sh.keys
	announce := ""
	if sh.soleShard {
		announce = g.ks.SaleOfKey(k.Hash)
	}
	n := 5
	for _, r := range batch {
		n += len(r.args)
	}
	args := make([]any, 0, n)
	args = append(args, g.ks.Notify(), announce, k.OrderPf, k.RLPf, g.syncFlag())
	for _, r := range batch {
		args = append(args, r.args...)
	}
	v, err := g.eval(ctx, g.scripts.purchase, []string{k.Hash, k.Idem, k.Units, k.Due, k.Outbox, k.MovesIn, k.Blocked}, args...)
	answerBatch(batch, v, err, func(r *purchaseReq, rep reply, err error) { r.reply, r.err = rep, err })
}

// answerBatch gives each item of a batch its answer from the script's list of
// answers v, or the call's error; an answer comes with errNotReplicated when
// the replicas fell short (durable.go).
func answerBatch[T any](batch []T, v any, err error, set func(T, reply, error)) {
	list, ok := v.([]any)
	if v == nil || !ok || len(list) != len(batch) {
		if err == nil {
			err = fmt.Errorf("unexpected batch reply %v", v)
		}
		for _, r := range batch {
			set(r, nil, err)
		}
		return
	}
	for i, r := range batch {
		rep, rerr := toReply(list[i])
		set(r, rep, cmp.Or(err, rerr))
	}
}

// scriptError maps a script's refusal to its domain error.
func scriptError(code string) error {
	switch code {
	case "sold_out":
		return domain.ErrSoldOut
	case "insufficient_stock":
		return domain.ErrInsufficientStock
	case "not_started":
		return domain.ErrNotStarted
	case "ended", "already_ended":
		return domain.ErrEnded
	case "limit_reached":
		return domain.ErrLimitReached
	case "blocked":
		return domain.ErrBlocked
	case "rate_limited":
		return domain.ErrRateLimited
	case "not_yet_released":
		return domain.ErrNotYetReleased
	case "sale_not_found":
		return domain.ErrSaleNotFound
	case "not_found":
		return domain.ErrOrderNotFound
	case "already_paid":
		return domain.ErrAlreadyPaid
	case "expired":
		return domain.ErrExpired
	}
	return fmt.Errorf("unexpected gate answer %q", code)
}

// placementEvents encodes the two events of a reservation. They are encoded
// here, in parallel Go, so the script (which runs on Redis's single thread)
// only stores bytes; a rejection discards them.
// md is the request's metadata (domain.MetadataFrom), on both.
func placementEvents(sale SaleConfig, cmd Purchase, orderID string, amount int64, now, payBy time.Time, md domain.Metadata) (reserved, placed []byte, err error) {
	reserved, err = domain.EncodeWith(domain.StockReserved{
		SaleID: sale.ID, OrderID: orderID, UserID: cmd.UserID, Quantity: cmd.Quantity,
	}, now, md)
	if err != nil {
		return nil, nil, err
	}
	placed, err = domain.EncodeWith(domain.OrderPlaced{
		OrderID: orderID, SaleID: sale.ID, UserID: cmd.UserID, Quantity: cmd.Quantity,
		PriceCents: sale.PriceCents, AmountCents: amount, PayBy: payBy.UTC(),
		// Recorded so that a gate restored from the log answers a retry
		// with this order (commands/restore.go).
		IdempotencyKey: cmd.IdempotencyKey,
	}, now, md)
	if err != nil {
		return nil, nil, err
	}
	return reserved, placed, nil
}
