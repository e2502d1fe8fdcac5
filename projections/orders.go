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
	// Every statement applies one event type to many rows at once (arrays
	// unnested), each row a different aggregate. The guard $g is
	// [{"type": T}]: "o.history @> $g" is true when T was applied before.
	return ordersSQL{
		// StockReserved and StockReleased only add to the history. The row may
		// not exist yet: StockReserved comes before OrderPlaced.
		history: `INSERT INTO ` + orders + ` AS o (order_id, history)
			SELECT u.id, u.h::jsonb FROM unnest($1::text[], $2::text[]) AS u(id, h)
			ON CONFLICT (order_id) DO UPDATE SET history = o.history || EXCLUDED.history, updated_at = now()
			WHERE NOT o.history @> $3::jsonb`,
		// OrderPlaced fills the order. If a redelivered OrderPlaced lands after
		// the order was paid or expired, the status stays where it is.
		placed: `INSERT INTO ` + orders + ` AS o
				(order_id, sale_id, user_id, quantity, price_cents, amount_cents, status, pay_by, placed_at, history)
			SELECT u.id, u.sale, u.usr, u.q, u.price, u.amount, 'reserved', u.pay_by, u.at, u.h::jsonb
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
				$7::timestamptz[], $8::timestamptz[], $9::text[]) AS u(id, sale, usr, q, price, amount, pay_by, at, h)
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
			SELECT u.id, 'paid', u.ref, u.at, u.h::jsonb
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS u(id, ref, at, h)
			ON CONFLICT (order_id) DO UPDATE SET
				status = CASE WHEN o.status IN ('paid', 'expired') THEN o.status ELSE 'paid' END,
				payment_ref = EXCLUDED.payment_ref, paid_at = EXCLUDED.paid_at,
				history = o.history || EXCLUDED.history, updated_at = now()
			WHERE NOT o.history @> $5::jsonb`,
		expired: `INSERT INTO ` + orders + ` AS o (order_id, status, expired_at, history)
			SELECT u.id, 'expired', u.at, u.h::jsonb
			FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(id, at, h)
			ON CONFLICT (order_id) DO UPDATE SET
				status = CASE WHEN o.status IN ('paid', 'expired') THEN o.status ELSE 'expired' END,
				expired_at = EXCLUDED.expired_at,
				history = o.history || EXCLUDED.history, updated_at = now()
			WHERE NOT o.history @> $4::jsonb`,
		// A sale is created once: the first SaleCreated wins, as in the fold.
		// created_at is NULL until then (a SaleEnded may come first).
		saleCreated: `INSERT INTO ` + sales + ` AS s
				(id, name, stock, price_cents, currency, starts_at, ends_at, per_user_limit, pay_within_s, created_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::timestamptz[],
				$7::timestamptz[], $8::bigint[], $9::bigint[], $10::timestamptz[])
			ON CONFLICT (id) DO UPDATE SET
				name = EXCLUDED.name, stock = EXCLUDED.stock, price_cents = EXCLUDED.price_cents,
				currency = EXCLUDED.currency,
				starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
				per_user_limit = EXCLUDED.per_user_limit, pay_within_s = EXCLUDED.pay_within_s,
				created_at = EXCLUDED.created_at, updated_at = now()
			WHERE s.created_at IS NULL`,
		saleEnded: `INSERT INTO ` + sales + ` AS s (id, ended, end_reason, unsold, ended_at)
			SELECT u.id, true, u.reason, u.unsold, u.at
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) AS u(id, reason, unsold, at)
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

// guards are the history guards of each order event type: [{"type": T}].
var guards = func() map[string]string {
	m := map[string]string{}
	for _, t := range domain.EventTypes() {
		g, _ := json.Marshal([]struct {
			Type string `json:"type"`
		}{{t}})
		m[t] = string(g)
	}
	return m
}()

// historyEntry returns the one-entry history array of an event.
func historyEntry(typ string, at time.Time) string {
	// Encoded here rather than with jsonb_build_object: Postgres would render
	// the time in the session's TimeZone; Go writes RFC 3339 in UTC, at the
	// microsecond precision of the timestamptz columns.
	e, _ := json.Marshal([]domain.HistoryEntry{{Type: typ, At: at}})
	return string(e)
}

// pgTime is t as timestamptz stores it: UTC, microseconds.
func pgTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// wave holds events of one batch that touch distinct rows, as columns: each
// event type becomes one multi-row statement.
type wave struct {
	reserved, released struct{ id, h []string }
	placed             struct {
		id, sale, user, h  []string
		qty, price, amount []int64
		payBy, at          []time.Time
	}
	paid struct {
		id, ref, h []string
		at         []time.Time
	}
	expired struct {
		id, h []string
		at    []time.Time
	}
	saleCreated struct {
		id, name, currency              []string
		stock, price, limit, payWithinS []int64
		starts, ends, at                []time.Time
	}
	saleEnded struct {
		id, reason []string
		unsold     []int64
		at         []time.Time
	}
}

// Apply applies batch through tx in one round trip. Statements are set-based,
// one per event type, which needs each to touch a row at most once; so the
// batch is cut into waves: the k-th event of an aggregate in the batch goes to
// wave k, and waves run in order. A Runner batch (one message per partition)
// is a single wave; a rebuild batch (many per partition) a few.
func (o *Orders) Apply(ctx context.Context, tx pgx.Tx, batch []Event) error {
	var waves []*wave
	seen := make(map[string]int, len(batch)) // row key → events of it so far
	for _, e := range batch {
		var key string
		switch ev := e.Event.(type) {
		case domain.SaleCreated:
			key = "s:" + ev.SaleID
		case domain.SaleEnded:
			key = "s:" + ev.SaleID
		case domain.StockReserved, domain.OrderPlaced, domain.OrderPaid, domain.OrderExpired, domain.StockReleased:
			key = "o:" + ev.AggregateID()
		default:
			continue // not an event this read model is made of
		}
		k := seen[key]
		seen[key] = k + 1
		if k == len(waves) {
			waves = append(waves, &wave{})
		}
		waves[k].add(e)
	}
	b := &pgx.Batch{}
	for _, w := range waves {
		w.queue(b, &o.sql)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	return nil
}

func (w *wave) add(e Event) {
	at := pgTime(e.Envelope.OccurredAt)
	switch ev := e.Event.(type) {
	case domain.StockReserved:
		w.reserved.id = append(w.reserved.id, ev.OrderID)
		w.reserved.h = append(w.reserved.h, historyEntry(ev.EventType(), at))
	case domain.StockReleased:
		w.released.id = append(w.released.id, ev.OrderID)
		w.released.h = append(w.released.h, historyEntry(ev.EventType(), at))
	case domain.OrderPlaced:
		p := &w.placed
		p.id, p.sale, p.user = append(p.id, ev.OrderID), append(p.sale, ev.SaleID), append(p.user, ev.UserID)
		p.qty, p.price, p.amount = append(p.qty, ev.Quantity), append(p.price, ev.PriceCents), append(p.amount, ev.AmountCents)
		p.payBy, p.at = append(p.payBy, pgTime(ev.PayBy)), append(p.at, at)
		p.h = append(p.h, historyEntry(ev.EventType(), at))
	case domain.OrderPaid:
		p := &w.paid
		p.id, p.ref, p.at = append(p.id, ev.OrderID), append(p.ref, ev.PaymentRef), append(p.at, at)
		p.h = append(p.h, historyEntry(ev.EventType(), at))
	case domain.OrderExpired:
		x := &w.expired
		x.id, x.at = append(x.id, ev.OrderID), append(x.at, at)
		x.h = append(x.h, historyEntry(ev.EventType(), at))
	case domain.SaleCreated:
		c := &w.saleCreated
		c.id, c.name, c.currency = append(c.id, ev.SaleID), append(c.name, ev.Name), append(c.currency, ev.Currency)
		c.stock, c.price = append(c.stock, ev.Stock), append(c.price, ev.PriceCents)
		c.limit, c.payWithinS = append(c.limit, ev.PerUserLimit), append(c.payWithinS, ev.PayWithinS)
		c.starts, c.ends, c.at = append(c.starts, pgTime(ev.StartsAt)), append(c.ends, pgTime(ev.EndsAt)), append(c.at, at)
	case domain.SaleEnded:
		x := &w.saleEnded
		x.id, x.reason, x.unsold, x.at = append(x.id, ev.SaleID), append(x.reason, ev.Reason), append(x.unsold, ev.Unsold), append(x.at, at)
	}
}

// queue adds the wave's statements to b. Within a wave the order of the
// statements does not matter: they touch different rows.
func (w *wave) queue(b *pgx.Batch, q *ordersSQL) {
	if len(w.reserved.id) > 0 {
		b.Queue(q.history, w.reserved.id, w.reserved.h, guards[domain.TypeStockReserved])
	}
	if p := &w.placed; len(p.id) > 0 {
		b.Queue(q.placed, p.id, p.sale, p.user, p.qty, p.price, p.amount, p.payBy, p.at, p.h, guards[domain.TypeOrderPlaced])
	}
	if p := &w.paid; len(p.id) > 0 {
		b.Queue(q.paid, p.id, p.ref, p.at, p.h, guards[domain.TypeOrderPaid])
	}
	if x := &w.expired; len(x.id) > 0 {
		b.Queue(q.expired, x.id, x.at, x.h, guards[domain.TypeOrderExpired])
	}
	if len(w.released.id) > 0 {
		b.Queue(q.history, w.released.id, w.released.h, guards[domain.TypeStockReleased])
	}
	if c := &w.saleCreated; len(c.id) > 0 {
		b.Queue(q.saleCreated, c.id, c.name, c.stock, c.price, c.currency, c.starts, c.ends, c.limit, c.payWithinS, c.at)
	}
	if x := &w.saleEnded; len(x.id) > 0 {
		b.Queue(q.saleEnded, x.id, x.reason, x.unsold, x.at)
	}
}
