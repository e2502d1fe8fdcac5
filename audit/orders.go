package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
)

// OrdersModelConfig configures OrdersModel; the tables default to the ones
// the orders projection writes (readmodels.OrdersConfig).
type OrdersModelConfig struct {
	OrdersTable     string // default "orders"
	SalesTable      string // default "sales"
	CheckpointTable string // default projections.DefaultCheckpointTable
}

// OrdersModel is the orders projection's read model (the orders and sales
// tables) as the audit compares it with the fold.
type OrdersModel struct {
	pool                         *pgxpool.Pool
	orders, sales, checkpointTbl string
}

// NewOrdersModel returns the orders read model in pool.
func NewOrdersModel(cfg OrdersModelConfig, pool *pgxpool.Pool) (*OrdersModel, error) {
	if pool == nil {
		return nil, errors.New("orders model: nil pool")
	}
	if cfg.OrdersTable == "" {
		cfg.OrdersTable = "orders"
	}
	if cfg.SalesTable == "" {
		cfg.SalesTable = "sales"
	}
	if cfg.CheckpointTable == "" {
		cfg.CheckpointTable = projections.DefaultCheckpointTable
	}
	quote := func(name string) string { return pgx.Identifier(strings.Split(name, ".")).Sanitize() }
	return &OrdersModel{pool: pool, orders: quote(cfg.OrdersTable), sales: quote(cfg.SalesTable), checkpointTbl: cfg.CheckpointTable}, nil
}

// Name returns readmodels.NameOrders.
func (m *OrdersModel) Name() string { return readmodels.NameOrders }

// Positions returns the orders projection's checkpoints.
func (m *OrdersModel) Positions(ctx context.Context, topic string) (map[int32]int64, error) {
	return checkpoints(ctx, m.pool, m.checkpointTbl, readmodels.NameOrders, topic)
}

// checkpoints are projection name's positions in topic, per partition.
func checkpoints(ctx context.Context, pool *pgxpool.Pool, table, name, topic string) (map[int32]int64, error) {
	ps, err := projections.ReadPositions(ctx, pool, table, name)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range ps {
		if p.Topic == topic {
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}

// Compare checks every placed order and every created sale of the log
// against its row, and that there is no row the log does not know. The
// orders of closed sales are compared by digest, and one by one where it
// differs.
func (m *OrdersModel) Compare(ctx context.Context, log LogState, violate func(string)) error {
	if err := m.compareOrders(ctx, log, violate); err != nil {
		return err
	}
	return m.compareSales(ctx, log.Fold, violate)
}

const orderColumns = `SELECT order_id, sale_id, user_id, quantity, status, amount_cents, payment_ref FROM `

// orderRow is a row of the orders table as the audit reads it.
type orderRow struct {
	id, sale, user, status, ref string
	qty, amount                 int64
}

// eachOrderRow calls fn with every row the query returns.
func (m *OrdersModel) eachOrderRow(ctx context.Context, fn func(orderRow), where string, args ...any) error {
	rows, err := m.pool.Query(ctx, orderColumns+m.orders+" WHERE "+where, args...)
	if err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	var r orderRow
	_, err = pgx.ForEachRow(rows, []any{&r.id, &r.sale, &r.user, &r.qty, &r.status, &r.amount, &r.ref}, func() error {
		fn(r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	return nil
}

// compareOrderRow compares a row with the log's order (nil: the log has none).
func compareOrderRow(r orderRow, o *domain.OrderState, violate func(string)) {
	if o == nil || o.Status == "" {
		violate(fmt.Sprintf("order %s: row (%s) but the log never placed it", r.id, r.status))
		return
	}
	var d diffs
	d.add("status", r.status, o.Status)
	d.add("sale", r.sale, o.SaleID)
	d.add("user", r.user, o.UserID)
	d.add("quantity", r.qty, o.Quantity)
	d.add("amount_cents", r.amount, o.AmountCents)
	d.add("payment_ref", r.ref, o.PaymentRef)
	if len(d) > 0 {
		violate(fmt.Sprintf("order %s: row has %s", r.id, d))
	}
}

func (m *OrdersModel) compareOrders(ctx context.Context, log LogState, violate func(string)) error {
	fold := log.Fold
	seen := map[string]bool{}
	digests := map[string]domain.Digest{}
	err := m.eachOrderRow(ctx, func(r orderRow) {
		if _, archived := fold.Archived[r.sale]; archived {
			d := digests[r.sale]
			d.RowDigest(r.id, r.sale, r.user, r.qty, r.status, r.amount, r.ref)
			digests[r.sale] = d
			return
		}
		seen[r.id] = true
		compareOrderRow(r, fold.Orders[r.id], violate)
	}, "status <> ''")
	if err != nil {
		return err
	}
	for _, o := range sortedOrders(fold.Orders) {
		if !seen[o.OrderID] {
			violate(fmt.Sprintf("order %s (sale %s, %s): in the log but no row", o.OrderID, o.SaleID, o.Status))
		}
	}
	itemise := func(saleID string, orders map[string]*domain.OrderState) error {
		seen := map[string]bool{}
		err := m.eachOrderRow(ctx, func(r orderRow) {
			seen[r.id] = true
			compareOrderRow(r, orders[r.id], violate)
		}, "status <> '' AND sale_id = $1", saleID)
		for _, o := range sortedOrders(orders) {
			if !seen[o.OrderID] {
				violate(fmt.Sprintf("order %s (sale %s, %s): in the log but no row", o.OrderID, o.SaleID, o.Status))
			}
		}
		return err
	}
	closed := func(a *domain.ArchivedSale) domain.Digest { return a.RowOrders }
	return compareClosed(log, digests, closed, "rows hold", itemise, violate)
}

func (m *OrdersModel) compareSales(ctx context.Context, fold *domain.Fold, violate func(string)) error {
	rows, err := m.pool.Query(ctx, `SELECT id, name, stock, price_cents, currency, starts_at, ends_at,
		per_user_limit, pay_within_s, ended, end_reason, unsold FROM `+m.sales+` WHERE created_at IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("read sales: %w", err)
	}
	seen := map[string]bool{}
	var (
		id, name, currency, reason          string
		stock, price, limit, within, unsold int64
		starts, ends                        time.Time
		ended                               bool
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &stock, &price, &currency, &starts, &ends, &limit, &within, &ended, &reason, &unsold}, func() error {
		seen[id] = true
		s, ok := fold.SaleState(id)
		if !ok || !s.Known {
			violate(fmt.Sprintf("sale %s: row but the log has no SaleCreated of it", id))
			return nil
		}
		var d diffs
		d.add("name", name, s.Name)
		d.add("stock", stock, s.Stock)
		d.add("price_cents", price, s.PriceCents)
		d.add("currency", currency, s.Currency)
		d.add("starts_at", starts.UTC(), s.StartsAt.UTC().Truncate(time.Microsecond))
		d.add("ends_at", ends.UTC(), s.EndsAt.UTC().Truncate(time.Microsecond))
		d.add("per_user_limit", limit, s.PerUserLimit)
		d.add("pay_within_s", within, s.PayWithinS)
		d.add("ended", ended, s.Ended)
		d.add("end_reason", reason, s.EndReason)
		d.add("unsold", unsold, s.Unsold)
		if len(d) > 0 {
			violate(fmt.Sprintf("sale %s: row has %s", id, d))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read sales: %w", err)
	}
	for id, s := range fold.Sales {
		if s.Known && !seen[id] {
			violate(fmt.Sprintf("sale %s: in the log but no row", id))
		}
	}
	for id := range fold.Archived {
		if !seen[id] {
			violate(fmt.Sprintf("sale %s: in the log but no row", id))
		}
	}
	return nil
}

// diffs collects "field got (log want)" for fields that differ.
type diffs []string

func (d *diffs) add(field string, got, want any) {
	if g, ok := got.(time.Time); ok {
		if g.Equal(want.(time.Time)) {
			return
		}
	} else if got == want {
		return
	}
	*d = append(*d, fmt.Sprintf("%s %v (log %v)", field, got, want))
}

func (d diffs) String() string { return strings.Join(d, ", ") }
