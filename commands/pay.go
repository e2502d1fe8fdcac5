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
//
// The order is not read first: its shard is in its id, and its quantity and
// amount, which OrderPaid carries, are joined into the event by the script
// (splice), so a payment is one script call, batched with its shard's.
func (g *Gate) Pay(ctx context.Context, cmd Pay) (Payment, error) {
	ref, err := domain.PaymentRef(cmd.PaymentRef)
	if err != nil {
		return Payment{}, err
	}
	if err := domain.ValidUserID(cmd.UserID); err != nil {
		return Payment{}, domain.ErrOrderNotFound
	}
	lay, sh, ok, err := g.orderShard(ctx, cmd.OrderID)
	if err != nil {
		return Payment{}, fmt.Errorf("pay order %s: %w", cmd.OrderID, err)
	}
	if !ok {
		return Payment{}, domain.ErrOrderNotFound
	}
	req, err := newPayReq(lay.id, cmd.OrderID, cmd.UserID, ref, g.clock.Now(), domain.MetadataFrom(ctx))
	if err != nil {
		return Payment{}, err
	}
	sh.pays.do(req)
	if req.err != nil {
		return Payment{}, fmt.Errorf("pay order %s: %w", cmd.OrderID, req.err)
	}
	switch r := req.reply; r.str(0) {
	case "paid":
		return Payment{OrderID: cmd.OrderID, Status: domain.StatusPaid, PaymentRef: ref, PaidAt: fromMS(r.str(1))}, nil
	case "overflow":
		return Payment{}, fmt.Errorf("pay order %s: the sale's paid total would exceed 2^53 cents: %w", cmd.OrderID, domain.ErrConflict)
	default:
		return Payment{}, scriptError(r.str(0))
	}
}

// payReq is one payment in a batch (batch.go).
type payReq struct {
	wake  chan []*payReq
	args  []any
	reply reply
	err   error
}

func (r *payReq) wakeup() chan []*payReq { return r.wake }

// newPayReq is the payment of orderID of sale saleID by user with ref at now.
func newPayReq(saleID, orderID, user, ref string, now time.Time, md domain.Metadata) (*payReq, error) {
	env, err := domain.EncodeWith(domain.OrderPaid{
		OrderID: orderID, SaleID: saleID, UserID: user, Quantity: placeholderQty,
		AmountCents: placeholderAmount, PaymentRef: ref,
	}, now, md)
	if err != nil {
		return nil, err
	}
	parts, err := splice(env, placeholderQty, placeholderAmount)
	if err != nil {
		return nil, err
	}
	return &payReq{wake: make(chan []*payReq, 1), args: []any{ms(now), user, ref, orderID, parts[0], parts[1], parts[2]}}, nil
}

// execPays decides a batch of payments of shard sh in one script call.
func (g *Gate) execPays(sh *shard, batch []*payReq) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RedisTimeout)
	defer cancel()
	k := sh.keys
	args := make([]any, 0, 2+7*len(batch))
	args = append(args, k.OrderPf, g.syncFlag())
	for _, r := range batch {
		args = append(args, r.args...)
	}
	v, err := g.eval(ctx, g.scripts.pay, []string{k.Hash, k.Due, k.Outbox}, args...)
	answerBatch(batch, v, err, func(r *payReq, rep reply, err error) { r.reply, r.err = rep, err })
}
