package readmodels

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/domain"
)

// Query limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// OrderView is an order as the read model has it.
type OrderView struct {
	OrderID     string `json:"order_id"`
	SaleID      string `json:"sale_id"`
	UserID      string `json:"user_id"`
	Quantity    int64  `json:"quantity"`
	PriceCents  int64  `json:"price_cents"`
	AmountCents int64  `json:"amount_cents"`
	// Status is domain.StatusReserved, StatusPaid or StatusExpired.
	Status     string    `json:"status"`
	PayBy      time.Time `json:"pay_by"`
	PaymentRef string    `json:"payment_ref,omitempty"`
	PlacedAt   time.Time `json:"placed_at"`
	PaidAt     time.Time `json:"paid_at,omitzero"`
	ExpiredAt  time.Time `json:"expired_at,omitzero"`
	// History lists the order's events in log order, one per type.
	History []domain.HistoryEntry `json:"history"`
}

// SaleView is a sale as the read model has it: its terms (their JSON
// members first, in SaleCreated's order) and how it ended. Remaining stock is
// not here: it belongs to the inventory projection and the gate.
type SaleView struct {
	ID string `json:"id"`
	domain.SaleTerms
	Ended bool `json:"ended"`
	// EndReason is domain.EndReasonEarly or EndReasonWindowClosed once ended.
	EndReason string `json:"end_reason,omitempty"`
	// Unsold is the pool returned to regular inventory when the sale ended.
	Unsold    int64     `json:"unsold"`
	CreatedAt time.Time `json:"created_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

const orderColumns = `order_id, sale_id, user_id, quantity, price_cents, amount_cents, status,
	pay_by, payment_ref, placed_at, paid_at, expired_at, history`

const saleColumns = `id, name, stock, price_cents, currency, starts_at, ends_at, per_user_limit, pay_within_s,
	ended, end_reason, unsold, created_at, ended_at`

func scanOrder(row pgx.CollectableRow) (OrderView, error) {
	var v OrderView
	var payBy, placed, paid, expired *time.Time
	err := row.Scan(&v.OrderID, &v.SaleID, &v.UserID, &v.Quantity, &v.PriceCents, &v.AmountCents, &v.Status,
		&payBy, &v.PaymentRef, &placed, &paid, &expired, &v.History)
	v.PayBy, v.PlacedAt, v.PaidAt, v.ExpiredAt = utc(payBy), utc(placed), utc(paid), utc(expired)
	return v, err
}

func scanSale(row pgx.CollectableRow) (SaleView, error) {
	var v SaleView
	var starts, ends, created, ended *time.Time
	err := row.Scan(&v.ID, &v.Name, &v.Stock, &v.PriceCents, &v.Currency, &starts, &ends, &v.PerUserLimit, &v.PayWithinS,
		&v.Ended, &v.EndReason, &v.Unsold, &created, &ended)
	v.StartsAt, v.EndsAt, v.CreatedAt, v.EndedAt = utc(starts), utc(ends), utc(created), utc(ended)
	return v, err
}

// utc turns a nullable timestamptz into a UTC time, zero for NULL.
func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultListLimit
	case limit > MaxListLimit:
		return MaxListLimit
	}
	return limit
}

// GetOrder returns the order id. It returns domain.ErrOrderNotFound when the
// projection has not seen the order's OrderPlaced (yet): callers that just
// placed it answer from the gate's reservation instead.
func (o *Orders) GetOrder(ctx context.Context, id string) (OrderView, error) {
	rows, err := o.pool.Query(ctx, o.sql.get, id)
	if err != nil {
		return OrderView{}, fmt.Errorf("get order %s: %w", id, err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanOrder)
	if errors.Is(err, pgx.ErrNoRows) {
		return OrderView{}, fmt.Errorf("get order %s: %w", id, domain.ErrOrderNotFound)
	}
	if err != nil {
		return OrderView{}, fmt.Errorf("get order %s: %w", id, err)
	}
	return v, nil
}

// ListUserOrders returns up to limit orders of userID, newest first. limit
// <= 0 means DefaultListLimit; it is capped at MaxListLimit.
func (o *Orders) ListUserOrders(ctx context.Context, userID string, limit int) ([]OrderView, error) {
	rows, err := o.pool.Query(ctx, o.sql.listUser, userID, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list orders of %s: %w", userID, err)
	}
	out, err := pgx.CollectRows(rows, scanOrder)
	if err != nil {
		return nil, fmt.Errorf("list orders of %s: %w", userID, err)
	}
	return out, nil
}

// GetSale returns the sale id, or domain.ErrSaleNotFound if the projection
// has not seen its SaleCreated.
func (o *Orders) GetSale(ctx context.Context, id string) (SaleView, error) {
	rows, err := o.pool.Query(ctx, o.sql.getSale, id)
	if err != nil {
		return SaleView{}, fmt.Errorf("get sale %s: %w", id, err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanSale)
	if errors.Is(err, pgx.ErrNoRows) {
		return SaleView{}, fmt.Errorf("get sale %s: %w", id, domain.ErrSaleNotFound)
	}
	if err != nil {
		return SaleView{}, fmt.Errorf("get sale %s: %w", id, err)
	}
	return v, nil
}

// ListSales returns up to limit sales, newest first (limit as in
// ListUserOrders).
func (o *Orders) ListSales(ctx context.Context, limit int) ([]SaleView, error) {
	rows, err := o.pool.Query(ctx, o.sql.listSales, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list sales: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanSale)
	if err != nil {
		return nil, fmt.Errorf("list sales: %w", err)
	}
	return out, nil
}
