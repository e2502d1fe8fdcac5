package commands

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/seckill/seckill/domain"
)

// GateOrder is an order as the gate holds it: always current, the source of
// read-your-writes until the read model has caught up.
type GateOrder struct {
	OrderID     string
	SaleID      string
	UserID      string
	Quantity    int64
	PriceCents  int64
	AmountCents int64
	Status      string
	PayBy       time.Time
	PaymentRef  string
	PlacedAt    time.Time
	PaidAt      time.Time
	ExpiredAt   time.Time
}

// History is the order's life as far as the gate knows it, in event terms.
func (o GateOrder) History() []domain.HistoryEntry {
	h := []domain.HistoryEntry{
		{Type: domain.TypeStockReserved, At: o.PlacedAt},
		{Type: domain.TypeOrderPlaced, At: o.PlacedAt},
	}
	switch o.Status {
	case domain.StatusPaid:
		h = append(h, domain.HistoryEntry{Type: domain.TypeOrderPaid, At: o.PaidAt})
	case domain.StatusExpired:
		h = append(h, domain.HistoryEntry{Type: domain.TypeOrderExpired, At: o.ExpiredAt},
			domain.HistoryEntry{Type: domain.TypeStockReleased, At: o.ExpiredAt})
	}
	return h
}

// Order reads an order from the gate; domain.ErrOrderNotFound when the gate
// has no such order.
func (g *Gate) Order(ctx context.Context, orderID string) (GateOrder, error) {
	// The order's shard is in its id.
	lay, sh, ok, err := g.orderShard(ctx, orderID)
	if err != nil {
		return GateOrder{}, fmt.Errorf("read order %s: %w", orderID, err)
	}
	if !ok {
		return GateOrder{}, domain.ErrOrderNotFound
	}
	h, err := g.rdb.HGetAll(ctx, sh.keys.Order(orderID)).Result()
	if err != nil {
		return GateOrder{}, fmt.Errorf("read order %s: %w", orderID, err)
	}
	if len(h) == 0 {
		return GateOrder{}, domain.ErrOrderNotFound
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(h[k], 10, 64); return n }
	return GateOrder{
		OrderID: orderID, SaleID: lay.id, UserID: h["user"], Quantity: num("qty"),
		PriceCents: num("price"), AmountCents: num("amount"), Status: h["status"],
		PayBy: fromMS(h["pay_by"]), PaymentRef: h["payment_ref"], PlacedAt: fromMS(h["placed_at"]),
		PaidAt: fromMS(h["paid_at"]), ExpiredAt: fromMS(h["expired_at"]),
	}, nil
}
