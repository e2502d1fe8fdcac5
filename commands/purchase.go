package commands

import (
	"context"
	"fmt"
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
	res, err, ask, prevAttempt := sg.check(cmd.UserID, cmd.IdempotencyKey, nowMS)
	if !ask {
		return res, err
	}
	if err := g.admit(); err != nil {
		return Reservation{}, err
	}
	if sale.Shards > 1 {
		return g.purchaseSharded(ctx, sg, cmd, now, prevAttempt)
	}
	payBy := now.Add(sale.PayWithin)
	orderID := domain.OrderID(sale.ID, newID())
	amount := sale.PriceCents * cmd.Quantity
	reserved, placed, err := placementEvents(sale, cmd, orderID, amount, now, payBy, domain.MetadataFrom(ctx))
	if err != nil {
		return Reservation{}, err
	}
	k := sg.keys
	rctx, cancel := context.WithTimeout(ctx, g.cfg.RedisTimeout)
	defer cancel()
	v, err := g.purchase.Run(rctx, g.rdb,
		[]string{k.sale, k.idem, k.units, k.due, k.outbox, k.order(orderID), k.rl(cmd.UserID), k.blocked},
		ms(now), cmd.UserID, idemField(cmd.UserID, cmd.IdempotencyKey), cmd.Quantity, orderID,
		ms(payBy), amount, k.orderPf, reserved, placed, g.NotifyChannel(), sale.ID,
	).Result()
	if err != nil {
		sg.unclaim(cmd.UserID, prevAttempt)
		return Reservation{}, fmt.Errorf("purchase in sale %s: %w", sale.ID, err)
	}
	r, err := toReply(v)
	if err != nil {
		return Reservation{}, err
	}
	// Every answer that tells something about the pool updates this node's
	// memory, so a node learns a sell-out even from a missed notification.
	switch r.str(0) {
	case "reserved":
		res := Reservation{OrderID: orderID, SaleID: sale.ID, Status: domain.StatusReserved,
			Quantity: cmd.Quantity, PayBy: payBy.UTC().Truncate(time.Millisecond)}
		sg.remember(cmd.UserID, cmd.IdempotencyKey, res, nowMS, -1)
		if r.int(5) == 0 {
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
		sg.markSoldOut()
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
