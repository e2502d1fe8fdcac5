package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
)

// OrdersConfig configures the orders projection.
type OrdersConfig struct {
	// OrdersTable is the table of orders ("schema.table" allowed). Default
	// "orders". A rebuild points it at a shadow table.
	OrdersTable string
	// SalesTable is the table of sales. Default "sales".
	SalesTable string
}

func (c *OrdersConfig) setDefaults() {
	if c.OrdersTable == "" {
		c.OrdersTable = "orders"
	}
	if c.SalesTable == "" {
		c.SalesTable = "sales"
	}
}

// Validate reports every invalid field, joined.
func (c OrdersConfig) Validate() error {
	var errs []error
	if _, err := parseTable(c.OrdersTable); err != nil {
		errs = append(errs, fmt.Errorf("orders table: %w", err))
	}
	if _, err := parseTable(c.SalesTable); err != nil {
		errs = append(errs, fmt.Errorf("sales table: %w", err))
	}
	return errors.Join(errs...)
}

// Orders is the orders projection: one row per order (status, amounts,
// payment, history) from StockReserved, OrderPlaced, OrderPaid, OrderExpired
// and StockReleased, and one row per sale from SaleCreated and SaleEnded. It
// also answers the queries on those rows.
//
// Every statement is idempotent on its own, beside the checkpoint that
// already filters redeliveries, because one batch may carry the same event
// twice (the relay publishes at least once) and a rebuild may replay
// anything: an order's history holds at most one entry per event type (event
// ids are <aggregate>/<type>, so "type already in history" means "event
// already applied"), a statement whose type is in the history changes
// nothing, and a terminal status is never replaced.
type Orders struct {
	pool *pgxpool.Pool
	sql  ordersSQL
}

type ordersSQL struct {
	history, placed, paid, expired, saleCreated, saleEnded string
	get, listUser, getSale, listSales                      string
}

// NewOrders returns the orders projection over the tables of cfg. pool is
// used by the queries only; Apply writes through the transaction it is given.
func NewOrders(cfg OrdersConfig, pool *pgxpool.Pool) (*Orders, error) {
	cfg.setDefaults()
	errs := []error{cfg.Validate()}
	if pool == nil {
		errs = append(errs, errors.New("nil pool"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new orders projection: %w", err)
	}
	ot, _ := parseTable(cfg.OrdersTable)
	st, _ := parseTable(cfg.SalesTable)
	return &Orders{pool: pool, sql: newOrdersSQL(string(ot), string(st))}, nil
}

// Name returns NameOrders.
func (*Orders) Name() string { return NameOrders }

func newOrdersSQL(orders, sales string) ordersSQL {
	// $h is the one-entry history array of the event, $g the guard
	// [{"type": T}]: "o.history @> $g" is true when T was applied before.
	return ordersSQL{
		// StockReserved and StockReleased only add to the history. The row may
		// not exist yet: StockReserved comes before OrderPlaced.
		history: `INSERT INTO ` + orders + ` AS o (order_id, history) VALUES ($1, $2::jsonb)
			ON CONFLICT (order_id) DO UPDATE SET history = o.history || EXCLUDED.history, updated_at = now()
			WHERE NOT o.history @> $3::jsonb`,
		// OrderPlaced fills the order. If a redelivered OrderPlaced lands after
		// the order was paid or expired, the status stays where it is.
		placed: `INSERT INTO ` + orders + ` AS o
				(order_id, sale_id, user_id, quantity, price_cents, amount_cents, status, pay_by, placed_at, history)
			VALUES ($1, $2, $3, $4, $5, $6, 'reserved', $7, $8, $9::jsonb)
			ON CONFLICT (order_id) DO UPDATE SET
				sale_id = EXCLUDED.sale_id, user_id = EXCLUDED.user_id, quantity = EXCLUDED.quantity,
				price_cents = EXCLUDED.price_cents, amount_cents = EXCLUDED.amount_cents,
				pay_by = EXCLUDED.pay_by, placed_at = EXCLUDED.placed_at,
				status = CASE WHEN o.status = '' THEN 'reserved' ELSE o.status END,
				history = o.history || EXCLUDED.history, updated_at = now()
			WHERE NOT o.history @> $10::jsonb`,
		// The terminal events never replace a terminal status: an order has
		// one end (the gate guarantees it; the audit checks it).
		paid: `INSERT INTO ` + orders + ` AS o (order_id, status, payment_ref, paid_at, history)
			VALUES ($1, 'paid', $2, $3, $4::jsonb)
			ON CONFLICT (order_id) DO UPDATE SET
				status = CASE WHEN o.status IN ('paid', 'expired') THEN o.status ELSE 'paid' END,
				payment_ref = EXCLUDED.payment_ref, paid_at = EXCLUDED.paid_at,
				history = o.history || EXCLUDED.history, updated_at = now()
			WHERE NOT o.history @> $5::jsonb`,
		expired: `INSERT INTO ` + orders + ` AS o (order_id, status, expired_at, history)
			VALUES ($1, 'expired', $2, $3::jsonb)
			ON CONFLICT (order_id) DO UPDATE SET
				status = CASE WHEN o.status IN ('paid', 'expired') THEN o.status ELSE 'expired' END,
				expired_at = EXCLUDED.expired_at,
				history = o.history || EXCLUDED.history, updated_at = now()
			WHERE NOT o.history @> $4::jsonb`,
		// A sale is created once: the first SaleCreated wins, as in the fold.
		// created_at is NULL until then (a SaleEnded may come first).
		saleCreated: `INSERT INTO ` + sales + ` AS s
				(id, name, stock, price_cents, starts_at, ends_at, per_user_limit, pay_within_s, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (id) DO UPDATE SET
				name = EXCLUDED.name, stock = EXCLUDED.stock, price_cents = EXCLUDED.price_cents,
				starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
				per_user_limit = EXCLUDED.per_user_limit, pay_within_s = EXCLUDED.pay_within_s,
				created_at = EXCLUDED.created_at, updated_at = now()
			WHERE s.created_at IS NULL`,
		saleEnded: `INSERT INTO ` + sales + ` AS s (id, ended, end_reason, unsold, ended_at)
			VALUES ($1, true, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET
				ended = true, end_reason = EXCLUDED.end_reason, unsold = EXCLUDED.unsold,
				ended_at = EXCLUDED.ended_at, updated_at = now()
			WHERE NOT s.ended`,

		get: `SELECT ` + orderColumns + ` FROM ` + orders + ` WHERE order_id = $1 AND status <> ''`,
		listUser: `SELECT ` + orderColumns + ` FROM ` + orders + `
			WHERE user_id = $1 AND status <> '' ORDER BY placed_at DESC, order_id DESC LIMIT $2`,
		getSale: `SELECT ` + saleColumns + ` FROM ` + sales + ` WHERE id = $1 AND created_at IS NOT NULL`,
		listSales: `SELECT ` + saleColumns + ` FROM ` + sales + `
			WHERE created_at IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT $1`,
	}
}

// historyArgs returns the one-entry history of an event and its guard.
func historyArgs(typ string, at time.Time) (entry, guard string) {
	// Encoded here rather than with jsonb_build_object: Postgres would render
	// the time in the session's TimeZone; Go writes RFC 3339 in UTC, at the
	// microsecond precision of the timestamptz columns.
	e, _ := json.Marshal([]domain.HistoryEntry{{Type: typ, At: pgTime(at)}})
	g, _ := json.Marshal([]struct {
		Type string `json:"type"`
	}{{typ}})
	return string(e), string(g)
}

// pgTime is t as timestamptz stores it: UTC, microseconds.
func pgTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Apply applies batch through tx in one round trip: one statement per event,
// run in order, so events of one order in the same batch (a rebuild reads
// many per partition) see each other.
func (o *Orders) Apply(ctx context.Context, tx pgx.Tx, batch []Event) error {
	b := &pgx.Batch{}
	for _, e := range batch {
		at := pgTime(e.Envelope.OccurredAt)
		switch ev := e.Event.(type) {
		case domain.StockReserved:
			h, g := historyArgs(e.Envelope.Type, at)
			b.Queue(o.sql.history, ev.OrderID, h, g)
		case domain.StockReleased:
			h, g := historyArgs(e.Envelope.Type, at)
			b.Queue(o.sql.history, ev.OrderID, h, g)
		case domain.OrderPlaced:
			h, g := historyArgs(e.Envelope.Type, at)
			b.Queue(o.sql.placed, ev.OrderID, ev.SaleID, ev.UserID, ev.Quantity, ev.PriceCents, ev.AmountCents,
				pgTime(ev.PayBy), at, h, g)
		case domain.OrderPaid:
			h, g := historyArgs(e.Envelope.Type, at)
			b.Queue(o.sql.paid, ev.OrderID, ev.PaymentRef, at, h, g)
		case domain.OrderExpired:
			h, g := historyArgs(e.Envelope.Type, at)
			b.Queue(o.sql.expired, ev.OrderID, at, h, g)
		case domain.SaleCreated:
			b.Queue(o.sql.saleCreated, ev.SaleID, ev.Name, ev.Stock, ev.PriceCents, pgTime(ev.StartsAt), pgTime(ev.EndsAt),
				ev.PerUserLimit, ev.PayWithinS, at)
		case domain.SaleEnded:
			b.Queue(o.sql.saleEnded, ev.SaleID, ev.Reason, ev.Unsold, at)
		default:
			// Not an event this read model is made of.
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	return nil
}
