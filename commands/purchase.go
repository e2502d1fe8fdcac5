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
	// Quantity defaults to 1.
	Quantity int64
	// IdempotencyKey names one purchase attempt of this user in this sale. A
	// purchase repeated with the same key (or, without a key, any repeat by the
	// same user) answers with the order the first one made. Distinct keys are
	// distinct attempts, each subject to the per-user limit.
	IdempotencyKey string
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

// Purchase runs the purchase script once. It returns a Reservation, or one of
// domain.ErrSoldOut, ErrInsufficientStock, ErrNotStarted, ErrEnded,
// ErrLimitReached, ErrSaleNotFound, or a *domain.ValidationError.
func (g *Gate) Purchase(ctx context.Context, cmd Purchase) (Reservation, error) {
	if cmd.Quantity == 0 {
		cmd.Quantity = 1
	}
	if err := domain.ValidateQuantity(cmd.Quantity); err != nil {
		return Reservation{}, err
	}
	if cmd.UserID == "" {
		return Reservation{}, domain.ErrUnauthenticated
	}
	if len(cmd.IdempotencyKey) > 128 {
		return Reservation{}, domain.Invalid("Idempotency-Key", "must be at most 128 characters")
	}
	sale, err := g.saleConfig(ctx, cmd.SaleID)
	if err != nil {
		return Reservation{}, err
	}
	now := g.clock.Now()
	payBy := now.Add(sale.PayWithin)
	orderID := domain.OrderID(sale.ID, newID())
	amount := sale.PriceCents * cmd.Quantity
	// Both events are encoded here, in parallel Go, so the script (which runs
	// on Redis's single thread) only stores bytes. They are used only if the
	// script reserves; a rejection discards them.
	reserved, err := domain.Encode(domain.StockReserved{
		SaleID: sale.ID, OrderID: orderID, UserID: cmd.UserID, Quantity: cmd.Quantity,
	}, now)
	if err != nil {
		return Reservation{}, err
	}
	placed, err := domain.Encode(domain.OrderPlaced{
		OrderID: orderID, SaleID: sale.ID, UserID: cmd.UserID, Quantity: cmd.Quantity,
		PriceCents: sale.PriceCents, AmountCents: amount, PayBy: payBy.UTC(),
	}, now)
	if err != nil {
		return Reservation{}, err
	}
	k := g.keys(sale.ID)
	v, err := g.purchase.Run(ctx, g.rdb,
		[]string{k.sale, k.idem, k.units, k.due, k.outbox, k.order(orderID)},
		ms(now), cmd.UserID, cmd.UserID+"|"+cmd.IdempotencyKey, cmd.Quantity, orderID,
		ms(payBy), amount, k.orderPf, reserved, placed,
	).Result()
	if err != nil {
		return Reservation{}, fmt.Errorf("purchase in sale %s: %w", sale.ID, err)
	}
	r, err := toReply(v)
	if err != nil {
		return Reservation{}, err
	}
	switch r.str(0) {
	case "reserved":
		return Reservation{OrderID: orderID, SaleID: sale.ID, Status: domain.StatusReserved,
			Quantity: cmd.Quantity, PayBy: payBy.UTC().Truncate(time.Millisecond)}, nil
	case "existing":
		return Reservation{OrderID: r.str(1), SaleID: sale.ID, Status: r.str(2),
			PayBy: fromMS(r.str(3)), Quantity: r.int(4), Replayed: true}, nil
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
