package readmodels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
)

// OrdersConfig configures the orders projection.
type OrdersConfig struct {
	// OrdersTable is the projections.Table of orders ("schema.table" allowed). Default
	// "orders". A rebuild points it at a shadow table.
	OrdersTable string
	// SalesTable is the projections.Table of sales. Default "sales".
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
	if _, err := projections.ParseTable(c.OrdersTable); err != nil {
		errs = append(errs, fmt.Errorf("orders table: %w", err))
	}
	if _, err := projections.ParseTable(c.SalesTable); err != nil {
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
// already applied"), an event whose type is in the history changes nothing,
// and a terminal status is never replaced.
type Orders struct {
	pool *pgxpool.Pool
	cfg  OrdersConfig
	sql  ordersSQL
}

type ordersSQL struct {
	orders, sales                     string
	get, listUser, getSale, listSales string
}

// NewOrders returns the orders projection over the tables of cfg. pool is
// used by the queries only; Apply writes through the transaction it is given.
func NewOrders(cfg OrdersConfig, pool *pgxpool.Pool) (*Orders, error) {
	cfg.setDefaults()
	if err := checkNew("orders", cfg.Validate(), pool); err != nil {
		return nil, err
	}
	ot, _ := projections.ParseTable(cfg.OrdersTable)
	st, _ := projections.ParseTable(cfg.SalesTable)
	return &Orders{pool: pool, cfg: cfg, sql: newOrdersSQL(string(ot), string(st))}, nil
}

// Name returns NameOrders.
func (*Orders) Name() string { return NameOrders }

// Tables returns the orders and sales tables.
func (o *Orders) Tables() []string { return []string{o.cfg.OrdersTable, o.cfg.SalesTable} }

// InSchema returns the orders projection over tables of the same names in
// schema, for a rebuild.
func (o *Orders) InSchema(schema string) (projections.Projection, error) {
	return NewOrders(OrdersConfig{
		OrdersTable: projections.InSchema(schema, o.cfg.OrdersTable),
		SalesTable:  projections.InSchema(schema, o.cfg.SalesTable),
	}, o.pool)
}

// applies is the SQL condition "the batch brings event type typ and the row
// has not applied it yet", inside ON CONFLICT DO UPDATE of the orders table.
func applies(typ string) string {
	g := guards[typ]
	return `(EXCLUDED.history @> '` + g + `'::jsonb AND NOT o.history @> '` + g + `'::jsonb)`
}

func newOrdersSQL(orders, sales string) ordersSQL {
	placed, paid, expired := applies(domain.TypeOrderPlaced), applies(domain.TypeOrderPaid), applies(domain.TypeOrderExpired)
	// fresh are the entries of the batch's history whose type the row has
	// not seen, in batch order.
	const fresh = `FROM jsonb_array_elements(EXCLUDED.history) WITH ORDINALITY AS x(e, n)
		WHERE NOT o.history @> jsonb_build_array(jsonb_build_object('type', x.e->>'type'))`
	return ordersSQL{
		// orders merges, for each order of the batch, everything the batch
		// says about it into its row in ONE write (a rebuild batch holds most
		// of an order's life, so this is one row version per order instead
		// of one per event). The inserted row is what the batch alone says;
		// on conflict, each event type applies only if the row's history
		// lacks it, exactly as applying the events one by one would do:
		// OrderPlaced fills the order (and sets 'reserved' only on a row
		// without a status), the first terminal event not seen before sets
		// the status unless the row already has a terminal one, and the
		// history grows by the entries it lacks, in log order.
		orders: `INSERT INTO ` + orders + ` AS o (order_id, sale_id, user_id, quantity, price_cents, amount_cents,
				status, pay_by, payment_ref, placed_at, paid_at, expired_at, history)
			SELECT u.id, u.sale, u.usr, u.q, u.price, u.amount, u.status, u.pay_by, u.ref, u.placed, u.paid, u.expired, u.h::jsonb
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[],
				$8::timestamptz[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::text[])
				AS u(id, sale, usr, q, price, amount, status, pay_by, ref, placed, paid, expired, h)
			ON CONFLICT (order_id) DO UPDATE SET
				sale_id = CASE WHEN ` + placed + ` THEN EXCLUDED.sale_id ELSE o.sale_id END,
				user_id = CASE WHEN ` + placed + ` THEN EXCLUDED.user_id ELSE o.user_id END,
				quantity = CASE WHEN ` + placed + ` THEN EXCLUDED.quantity ELSE o.quantity END,
				price_cents = CASE WHEN ` + placed + ` THEN EXCLUDED.price_cents ELSE o.price_cents END,
				amount_cents = CASE WHEN ` + placed + ` THEN EXCLUDED.amount_cents ELSE o.amount_cents END,
				pay_by = CASE WHEN ` + placed + ` THEN EXCLUDED.pay_by ELSE o.pay_by END,
				placed_at = CASE WHEN ` + placed + ` THEN EXCLUDED.placed_at ELSE o.placed_at END,
				status = CASE WHEN o.status IN ('paid', 'expired') THEN o.status
					ELSE coalesce(
						(SELECT CASE x.e->>'type' WHEN 'OrderPaid' THEN 'paid' ELSE 'expired' END ` + fresh + `
							AND x.e->>'type' IN ('OrderPaid', 'OrderExpired') ORDER BY x.n LIMIT 1),
						CASE WHEN o.status = '' AND ` + placed + ` THEN 'reserved' ELSE o.status END)
					END,
				payment_ref = CASE WHEN ` + paid + ` THEN EXCLUDED.payment_ref ELSE o.payment_ref END,
				paid_at = CASE WHEN ` + paid + ` THEN EXCLUDED.paid_at ELSE o.paid_at END,
				expired_at = CASE WHEN ` + expired + ` THEN EXCLUDED.expired_at ELSE o.expired_at END,
				history = o.history || coalesce((SELECT jsonb_agg(x.e ORDER BY x.n) ` + fresh + `), '[]'::jsonb),
				updated_at = now()
			WHERE NOT o.history @> EXCLUDED.history`,
		// sales merges SaleCreated and SaleEnded the same way: a sale is
		// created once (the first SaleCreated wins, as in the fold; its
		// created_at is NULL until then, since a SaleEnded may come first)
		// and ends once.
		sales: `INSERT INTO ` + sales + ` AS s (id, name, stock, price_cents, currency, starts_at, ends_at,
				per_user_limit, pay_within_s, created_at, ended, end_reason, unsold, ended_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::timestamptz[],
				$7::timestamptz[], $8::bigint[], $9::bigint[], $10::timestamptz[], $11::bool[], $12::text[],
				$13::bigint[], $14::timestamptz[])
			ON CONFLICT (id) DO UPDATE SET
				name = CASE WHEN s.created_at IS NULL THEN EXCLUDED.name ELSE s.name END,
				stock = CASE WHEN s.created_at IS NULL THEN EXCLUDED.stock ELSE s.stock END,
				price_cents = CASE WHEN s.created_at IS NULL THEN EXCLUDED.price_cents ELSE s.price_cents END,
				currency = CASE WHEN s.created_at IS NULL THEN EXCLUDED.currency ELSE s.currency END,
				starts_at = CASE WHEN s.created_at IS NULL THEN EXCLUDED.starts_at ELSE s.starts_at END,
				ends_at = CASE WHEN s.created_at IS NULL THEN EXCLUDED.ends_at ELSE s.ends_at END,
				per_user_limit = CASE WHEN s.created_at IS NULL THEN EXCLUDED.per_user_limit ELSE s.per_user_limit END,
				pay_within_s = CASE WHEN s.created_at IS NULL THEN EXCLUDED.pay_within_s ELSE s.pay_within_s END,
				created_at = coalesce(s.created_at, EXCLUDED.created_at),
				ended = s.ended OR EXCLUDED.ended,
				end_reason = CASE WHEN s.ended THEN s.end_reason ELSE EXCLUDED.end_reason END,
				unsold = CASE WHEN s.ended THEN s.unsold ELSE EXCLUDED.unsold END,
				ended_at = CASE WHEN s.ended THEN s.ended_at ELSE EXCLUDED.ended_at END,
				updated_at = now()
			-- The CASEs above test s.created_at and s.ended as they were:
			-- every SET expression sees the old row.
			WHERE (s.created_at IS NULL AND EXCLUDED.created_at IS NOT NULL) OR (NOT s.ended AND EXCLUDED.ended)`,

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

// pgTime is t as timestamptz stores it: UTC, microseconds.
func pgTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ts is t as a timestamptz parameter (NULL for the zero time).
func ts(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: pgTime(t), Valid: true}
}

// orderDelta is what one batch says about one order: the first event of each
// type (a second one is a duplicate: event ids are <order>/<type>), in log order.
type orderDelta struct {
	id                          string
	history                     []domain.HistoryEntry
	seen                        uint8 // bit per event type in history
	placed                      domain.OrderPlaced
	placedAt, paidAt, expiredAt time.Time
	paymentRef                  string
	status                      string // the status the batch alone gives
}

// saleDelta is what one batch says about one sale.
type saleDelta struct {
	created   *domain.SaleCreated
	createdAt time.Time
	ended     *domain.SaleEnded
	endedAt   time.Time
}

// Order event types as bits, for orderDelta.seen and the inventory's
// per-order bookkeeping (which stores them: never renumber).
const (
	bitReserved uint8 = 1 << iota
	bitPlaced
	bitPaid
	bitExpired
	bitReleased
)

func orderBit(typ string) uint8 {
	switch typ {
	case domain.TypeStockReserved:
		return bitReserved
	case domain.TypeOrderPlaced:
		return bitPlaced
	case domain.TypeOrderPaid:
		return bitPaid
	case domain.TypeOrderExpired:
		return bitExpired
	case domain.TypeStockReleased:
		return bitReleased
	}
	return 0
}

// Apply applies batch through tx in one round trip of at most two
// statements: one upsert of every order the batch touches and one of every
// sale, each row written once however many of its events the batch holds.
func (o *Orders) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	orders := map[string]*orderDelta{}
	var orderIDs []string // first-seen order, so statements are deterministic
	sales := map[string]*saleDelta{}
	var saleIDs []string
	for _, e := range batch {
		at := pgTime(e.Envelope.OccurredAt)
		switch ev := e.Event.(type) {
		case domain.SaleCreated, domain.SaleEnded:
			id := ev.AggregateID()
			d := sales[id]
			if d == nil {
				d = &saleDelta{}
				sales[id] = d
				saleIDs = append(saleIDs, id)
			}
			switch ev := ev.(type) {
			case domain.SaleCreated:
				if d.created == nil {
					d.created, d.createdAt = &ev, at
				}
			case domain.SaleEnded:
				if d.ended == nil {
					d.ended, d.endedAt = &ev, at
				}
			}
		case domain.StockReserved, domain.OrderPlaced, domain.OrderPaid, domain.OrderExpired, domain.StockReleased:
			id := ev.AggregateID()
			d := orders[id]
			if d == nil {
				d = &orderDelta{id: id}
				orders[id] = d
				orderIDs = append(orderIDs, id)
			}
			d.add(ev, at)
		}
		// Other types are not what this read model is made of.
	}
	b := &pgx.Batch{}
	if len(orderIDs) > 0 {
		o.queueOrders(b, orders, orderIDs)
	}
	if len(saleIDs) > 0 {
		queueSales(b, o.sql.sales, sales, saleIDs)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	return nil
}

func (d *orderDelta) add(ev domain.Event, at time.Time) {
	bit := orderBit(ev.EventType())
	if d.seen&bit != 0 {
		return // the same event again (at least once delivery)
	}
	d.seen |= bit
	d.history = append(d.history, domain.HistoryEntry{Type: ev.EventType(), At: at})
	switch ev := ev.(type) {
	case domain.OrderPlaced:
		d.placed, d.placedAt = ev, at
		if d.status == "" {
			d.status = domain.StatusReserved
		}
	case domain.OrderPaid:
		d.paidAt, d.paymentRef = at, ev.PaymentRef
		if !domain.Terminal(d.status) {
			d.status = domain.StatusPaid
		}
	case domain.OrderExpired:
		d.expiredAt = at
		if !domain.Terminal(d.status) {
			d.status = domain.StatusExpired
		}
	}
}

func (o *Orders) queueOrders(b *pgx.Batch, orders map[string]*orderDelta, ids []string) {
	n := len(ids)
	var (
		sale, user, status, ref, hist = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		qty, price, amount            = make([]int64, n), make([]int64, n), make([]int64, n)
		payBy, placed, paid, expired  = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	)
	for i, id := range ids {
		d := orders[id]
		p := d.placed
		sale[i], user[i], qty[i], price[i], amount[i] = p.SaleID, p.UserID, p.Quantity, p.PriceCents, p.AmountCents
		status[i], ref[i] = d.status, d.paymentRef
		payBy[i], placed[i], paid[i], expired[i] = ts(p.PayBy), ts(d.placedAt), ts(d.paidAt), ts(d.expiredAt)
		// Encoded here rather than with jsonb_build_object: Postgres would
		// render the time in the session's TimeZone; Go writes RFC 3339 in
		// UTC, at the microsecond precision of the timestamptz columns.
		h, _ := json.Marshal(d.history)
		hist[i] = string(h)
	}
	b.Queue(o.sql.orders, ids, sale, user, qty, price, amount, status, payBy, ref, placed, paid, expired, hist)
}

func queueSales(b *pgx.Batch, sql string, sales map[string]*saleDelta, ids []string) {
	n := len(ids)
	var (
		name, currency, reason                 = make([]string, n), make([]string, n), make([]string, n)
		stock, price, limit, payWithin, unsold = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		starts, ends, created, endedAt         = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		ended                                  = make([]bool, n)
	)
	for i, id := range ids {
		d := sales[id]
		if c := d.created; c != nil {
			name[i], currency[i], stock[i], price[i] = c.Name, c.Currency, c.Stock, c.PriceCents
			limit[i], payWithin[i] = c.PerUserLimit, c.PayWithinS
			starts[i], ends[i], created[i] = ts(c.StartsAt), ts(c.EndsAt), ts(d.createdAt)
		}
		if e := d.ended; e != nil {
			ended[i], reason[i], unsold[i], endedAt[i] = true, e.Reason, e.Unsold, ts(d.endedAt)
		}
	}
	b.Queue(sql, ids, name, stock, price, currency, starts, ends, limit, payWithin, created, ended, reason, unsold, endedAt)
}

// checkNew is the check every read model's constructor makes: its
// configuration's own errors, and a pool for the queries.
func checkNew(what string, invalid error, pool *pgxpool.Pool) error {
	errs := []error{invalid}
	if pool == nil {
		errs = append(errs, errors.New("nil pool"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("new %s projection: %w", what, err)
	}
	return nil
}
