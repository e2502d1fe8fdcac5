package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/seckill/seckill/domain"
)

// Pay is the command that pays a reservation.
type Pay struct {
	OrderID    string
	UserID     string
	PaymentRef string
}

// Payment is the answer to a successful Pay.
type Payment struct {
	OrderID    string    `json:"order_id"`
	Status     string    `json:"status"`
	PaymentRef string    `json:"payment_ref"`
	PaidAt     time.Time `json:"paid_at"`
}

// Pay marks a reservation paid. It returns domain.ErrOrderNotFound (also for
// someone else's order, so ids are not probed), ErrAlreadyPaid (paid under
// another payment reference), ErrExpired, or a *domain.ValidationError.
// Paying again with the same reference returns the first answer.
func (g *Gate) Pay(ctx context.Context, cmd Pay) (Payment, error) {
	ref, err := domain.PaymentRef(cmd.PaymentRef)
	if err != nil {
		return Payment{}, err
	}
	o, err := g.Order(ctx, cmd.OrderID)
	if err != nil {
		return Payment{}, err
	}
	if o.UserID != cmd.UserID {
		return Payment{}, domain.ErrOrderNotFound
	}
	now := g.clock.Now()
	env, err := domain.EncodeWith(domain.OrderPaid{
		OrderID: o.OrderID, SaleID: o.SaleID, UserID: o.UserID, Quantity: o.Quantity,
		AmountCents: o.AmountCents, PaymentRef: ref,
	}, now, domain.MetadataFrom(ctx))
	if err != nil {
		return Payment{}, err
	}
	// The order's shard of a sharded sale, else the sale's keys.
	k, _, _, err := g.orderKeys(ctx, o.OrderID)
	if err != nil {
		return Payment{}, err
	}
	v, err := g.pay.Run(ctx, g.rdb, []string{k.order(o.OrderID), k.due, k.outbox, k.sale},
		ms(now), cmd.UserID, ref, o.OrderID, env).Result()
	if err != nil {
		return Payment{}, fmt.Errorf("pay order %s: %w", o.OrderID, err)
	}
	r, err := toReply(v)
	if err != nil {
		return Payment{}, err
	}
	if r.str(0) != "paid" {
		return Payment{}, scriptError(r.str(0))
	}
	return Payment{OrderID: o.OrderID, Status: domain.StatusPaid, PaymentRef: ref, PaidAt: fromMS(r.str(1))}, nil
}
