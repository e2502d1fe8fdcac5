package readmodels

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
)

// Statuses of an order in the everyday order format (daily_orders.status).
const (
	DailyPendingPayment = "pending_payment" // seckill "reserved"
	DailyPaid           = "paid"
	DailyClosed         = "closed" // seckill "expired": not paid in time
)

// DailyStatus maps a seckill order status to the everyday one.
func DailyStatus(seckill string) string {
	switch seckill {
	case domain.StatusReserved:
		return DailyPendingPayment
	case domain.StatusPaid:
		return DailyPaid
	case domain.StatusExpired:
		return DailyClosed
	}
	return ""
}

// DailyConfig configures the daily projection.
type DailyConfig struct {
	// OrdersTable holds the orders in the everyday format. Default
	// "daily_orders".
	OrdersTable string
	// SalesTable holds the name and currency of each sale. Default
	// "daily_sales".
	SalesTable string
	// BuyersTable holds who placed orders per day and sale. Default
	// "daily_buyers".
	BuyersTable string
	// SummaryTable holds the per-day summary. Default "daily_summary".
	SummaryTable string
	// ReturnsTable holds the inventory-return feed (returns.go). Default
	// "daily_returns".
	ReturnsTable string
	// Location is the time zone of the business day. Default UTC. The day
	// is fixed when an event is applied: after changing it, rebuild the
	// projection (`seckill projections rebuild daily`).
	Location *time.Location
}

func (c *DailyConfig) setDefaults() {
	if c.OrdersTable == "" {
		c.OrdersTable = "daily_orders"
	}
	if c.SalesTable == "" {
		c.SalesTable = "daily_sales"
	}
	if c.BuyersTable == "" {
		c.BuyersTable = "daily_buyers"
	}
	if c.SummaryTable == "" {
		c.SummaryTable = "daily_summary"
	}
	if c.ReturnsTable == "" {
		c.ReturnsTable = "daily_returns"
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
}

// Validate reports every invalid field, joined.
func (c DailyConfig) Validate() error {
	var errs []error
	for what, name := range map[string]string{"orders": c.OrdersTable, "sales": c.SalesTable, "buyers": c.BuyersTable, "summary": c.SummaryTable, "returns": c.ReturnsTable} {
		if _, err := projections.ParseTable(name); err != nil {
			errs = append(errs, fmt.Errorf("daily %s table: %w", what, err))
		}
	}
	return errors.Join(errs...)
}

// Daily is the daily-order projection (seed 000's 日常): it mirrors every
// seckill order into the everyday order system's format, one row per order
// with its status kept current, and keeps a per-day summary per sale (orders
// placed, paid, expired, paid revenue, distinct buyers). It is meant to run
// at a pace the everyday order database can take (ConsumerConfig's Rate,
// MaxBatch and Workers) and possibly against that database (its own pool).
//
// Idempotence: an order's row records when it was placed, paid and closed;
// an event applies only if its timestamp is not set yet, and the summary
// counts exactly the timestamps a statement sets, so a duplicate (at any
// offset) changes nothing. Buyers count once per day and sale through
// daily_buyers.
type Daily struct {
	pool *pgxpool.Pool
	cfg  DailyConfig
	sql  struct{ orders, sales, report, returns, returnsPage, returnsBySale string }
}

// NewDaily returns the daily projection over the tables of cfg. pool is used
// by the queries only; Apply writes through the transaction it is given.
func NewDaily(cfg DailyConfig, pool *pgxpool.Pool) (*Daily, error) {
	cfg.setDefaults()
	if err := checkNew("daily", cfg.Validate(), pool); err != nil {
		return nil, err
	}
	ot, _ := projections.ParseTable(cfg.OrdersTable)
	st, _ := projections.ParseTable(cfg.SalesTable)
	bt, _ := projections.ParseTable(cfg.BuyersTable)
	smt, _ := projections.ParseTable(cfg.SummaryTable)
	rt, _ := projections.ParseTable(cfg.ReturnsTable)
	p := &Daily{pool: pool, cfg: cfg}
	p.sql.returns, p.sql.returnsPage, p.sql.returnsBySale = returnsSQL(string(rt))
	// One statement: old is the rows as they were (the statement's
	// snapshot), f says which of the batch's facts are new to them, up
	// writes the rows, buyers records first orders per day, and the summary
	// adds exactly the new facts. See Inventory for why old is locked.
	placedNew := `(o.placed_at IS NULL AND EXCLUDED.placed_at IS NOT NULL)`
	p.sql.orders = `WITH d AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
				$7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::date[], $12::timestamptz[],
				$13::date[], $14::bigint[], $15::timestamptz[], $16::date[])
				AS u(id, sale, usr, q, price, total, status, ref, pay_by, placed_at, placed_day, paid_at,
					paid_day, paid_amount, closed_at, closed_day)),
		old AS (
			SELECT o.order_no, o.placed_at, o.paid_at, o.closed_at FROM ` + string(ot) + ` o
			JOIN d ON o.order_no = d.id FOR UPDATE OF o),
		f AS (
			SELECT d.*,
				d.placed_at IS NOT NULL AND old.placed_at IS NULL AS new_placed,
				d.paid_at IS NOT NULL AND old.paid_at IS NULL AS new_paid,
				d.closed_at IS NOT NULL AND old.closed_at IS NULL AS new_closed
			FROM d LEFT JOIN old ON old.order_no = d.id),
		up AS (
			INSERT INTO ` + string(ot) + ` AS o (order_no, user_id, item_id, quantity, unit_price_cents, total_cents,
				status, payment_ref, pay_by, placed_at, paid_at, closed_at, business_day)
			SELECT id, usr, sale, q, price, total, status, ref, pay_by, placed_at, paid_at, closed_at, placed_day FROM d
			ON CONFLICT (order_no) DO UPDATE SET
				user_id = CASE WHEN ` + placedNew + ` THEN EXCLUDED.user_id ELSE o.user_id END,
				item_id = CASE WHEN ` + placedNew + ` THEN EXCLUDED.item_id ELSE o.item_id END,
				quantity = CASE WHEN ` + placedNew + ` THEN EXCLUDED.quantity ELSE o.quantity END,
				unit_price_cents = CASE WHEN ` + placedNew + ` THEN EXCLUDED.unit_price_cents ELSE o.unit_price_cents END,
				total_cents = CASE WHEN ` + placedNew + ` THEN EXCLUDED.total_cents ELSE o.total_cents END,
				pay_by = CASE WHEN ` + placedNew + ` THEN EXCLUDED.pay_by ELSE o.pay_by END,
				business_day = CASE WHEN ` + placedNew + ` THEN EXCLUDED.business_day ELSE o.business_day END,
				placed_at = coalesce(o.placed_at, EXCLUDED.placed_at),
				payment_ref = CASE WHEN o.paid_at IS NULL AND EXCLUDED.paid_at IS NOT NULL THEN EXCLUDED.payment_ref ELSE o.payment_ref END,
				paid_at = coalesce(o.paid_at, EXCLUDED.paid_at),
				closed_at = coalesce(o.closed_at, EXCLUDED.closed_at),
				-- A terminal status is never replaced. A row without one has
				-- applied no terminal event, so the batch's first terminal
				-- (EXCLUDED.status, computed in Go) is the first overall.
				status = CASE
					WHEN o.status IN ('paid', 'closed') THEN o.status
					WHEN EXCLUDED.status IN ('paid', 'closed') THEN EXCLUDED.status
					WHEN o.status = '' THEN EXCLUDED.status
					ELSE o.status END,
				updated_at = now()
			WHERE ` + placedNew + ` OR (o.paid_at IS NULL AND EXCLUDED.paid_at IS NOT NULL)
				OR (o.closed_at IS NULL AND EXCLUDED.closed_at IS NOT NULL)),
		buyers AS (
			INSERT INTO ` + string(bt) + ` (day, sale_id, user_id)
			SELECT DISTINCT placed_day, sale, usr FROM f WHERE new_placed
			ON CONFLICT DO NOTHING
			RETURNING day, sale_id),
		facts AS (
			SELECT placed_day AS day, sale, 1 AS placed, 0 AS paid, 0 AS expired, 0::bigint AS revenue, 0 AS buyers FROM f WHERE new_placed
			UNION ALL SELECT paid_day, sale, 0, 1, 0, paid_amount, 0 FROM f WHERE new_paid
			UNION ALL SELECT closed_day, sale, 0, 0, 1, 0, 0 FROM f WHERE new_closed
			UNION ALL SELECT day, sale_id, 0, 0, 0, 0, 1 FROM buyers)
		INSERT INTO ` + string(smt) + ` AS s (day, sale_id, placed, paid, expired, revenue_cents, buyers)
		SELECT day, sale, sum(placed), sum(paid), sum(expired), sum(revenue), sum(buyers) FROM facts GROUP BY day, sale
		ON CONFLICT (day, sale_id) DO UPDATE SET
			placed = s.placed + EXCLUDED.placed, paid = s.paid + EXCLUDED.paid, expired = s.expired + EXCLUDED.expired,
			revenue_cents = s.revenue_cents + EXCLUDED.revenue_cents, buyers = s.buyers + EXCLUDED.buyers,
			updated_at = now()`
	p.sql.sales = `INSERT INTO ` + string(st) + ` (sale_id, name, currency, price_cents)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
		ON CONFLICT (sale_id) DO NOTHING`
	p.sql.report = `SELECT s.day, s.sale_id, coalesce(n.name, ''), coalesce(n.currency, ''),
			s.placed, s.paid, s.expired, s.revenue_cents, s.buyers
		FROM ` + string(smt) + ` s LEFT JOIN ` + string(st) + ` n ON n.sale_id = s.sale_id
		WHERE s.day BETWEEN $1 AND $2 ORDER BY s.day, s.sale_id`
	return p, nil
}

// Name returns NameDaily.
func (*Daily) Name() string { return NameDaily }

// Location is the time zone of the business day.
func (p *Daily) Location() *time.Location { return p.cfg.Location }

// Tables returns every projections.Table the projection writes.
func (p *Daily) Tables() []string {
	return []string{p.cfg.OrdersTable, p.cfg.SalesTable, p.cfg.BuyersTable, p.cfg.SummaryTable, p.cfg.ReturnsTable}
}

// InSchema returns the daily projection over tables of the same names in
// schema (and the same time zone), for a rebuild.
func (p *Daily) InSchema(schema string) (projections.Projection, error) {
	return NewDaily(DailyConfig{
		OrdersTable:  projections.InSchema(schema, p.cfg.OrdersTable),
		SalesTable:   projections.InSchema(schema, p.cfg.SalesTable),
		BuyersTable:  projections.InSchema(schema, p.cfg.BuyersTable),
		SummaryTable: projections.InSchema(schema, p.cfg.SummaryTable),
		ReturnsTable: projections.InSchema(schema, p.cfg.ReturnsTable),
		Location:     p.cfg.Location,
	}, p.pool)
}

// dailyOrder is what one batch says about one order: the first event of
// each type, and the status the batch alone gives.
type dailyOrder struct {
	sale, status               string
	placed                     *domain.OrderPlaced
	placedAt, paidAt, closedAt time.Time
	ref                        string
	paidAmount                 int64
}

// day is t's date in the business time zone.
func (p *Daily) day(t time.Time) pgtype.Date {
	if t.IsZero() {
		return pgtype.Date{}
	}
	y, m, d := t.In(p.cfg.Location).Date()
	return pgtype.Date{Time: time.Date(y, m, d, 0, 0, 0, 0, time.UTC), Valid: true}
}

// apply folds one order event of a batch into o; at is when it occurred.
func (o *dailyOrder) apply(e domain.Event, at time.Time) {
	switch ev := e.(type) {
	case domain.OrderPlaced:
		if o.placed == nil {
			o.placed, o.placedAt, o.sale = &ev, at, ev.SaleID
			if o.status == "" {
				o.status = DailyPendingPayment
			}
		}
	case domain.OrderPaid:
		if o.paidAt.IsZero() {
			o.paidAt, o.ref, o.paidAmount, o.sale = at, ev.PaymentRef, ev.AmountCents, ev.SaleID
			if o.status != DailyPaid && o.status != DailyClosed {
				o.status = DailyPaid
			}
		}
	case domain.OrderExpired:
		if o.closedAt.IsZero() {
			o.closedAt, o.sale = at, ev.SaleID
			if o.status != DailyPaid && o.status != DailyClosed {
				o.status = DailyClosed
			}
		}
	}
}

// dailySale is what the daily report keeps of a sale: its name and price.
type dailySale struct {
	name, currency string
	price          int64
}

// dailyBatch is what one Apply gathers before it writes: the orders and the
// sales of the batch, each in the order first seen.
type dailyBatch struct {
	orders   map[string]*dailyOrder
	orderIDs []string
	sales    map[string]dailySale
	saleIDs  []string
}

func (d *dailyBatch) add(e projections.Event) {
	switch ev := e.Event.(type) {
	case domain.SaleCreated:
		if _, ok := d.sales[ev.SaleID]; !ok {
			d.sales[ev.SaleID] = dailySale{ev.Name, ev.Currency, ev.PriceCents}
			d.saleIDs = append(d.saleIDs, ev.SaleID)
		}
	case domain.OrderPlaced, domain.OrderPaid, domain.OrderExpired:
		id := ev.AggregateID()
		o := d.orders[id]
		if o == nil {
			o = &dailyOrder{}
			d.orders[id] = o
			d.orderIDs = append(d.orderIDs, id)
		}
		o.apply(ev, pgTime(e.Envelope.OccurredAt))
	}
	// Reservations and releases are not in the everyday format.
}

// Apply applies batch through tx in one round trip: one statement for the
// orders (rows, buyers and summary together) and one for the sales.
func (p *Daily) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	d := dailyBatch{orders: map[string]*dailyOrder{}, sales: map[string]dailySale{}}
	for _, e := range batch {
		d.add(e)
	}
	b := &pgx.Batch{}
	p.queueOrders(b, &d)
	p.queueSales(b, &d)
	p.queueReturns(b, batch) // returns.go
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("daily: %w", err)
	}
	return nil
}

// queueOrders queues the statement that writes d's orders, column by column.
func (p *Daily) queueOrders(b *pgx.Batch, d *dailyBatch) {
	ids := d.orderIDs
	n := len(ids)
	if n == 0 {
		return
	}
	var (
		sale, user, status, ref           = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		qty, price, total, paidAmount     = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		payBy, placedAt, paidAt, closedAt = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		placedDay, paidDay, closedDay     = make([]pgtype.Date, n), make([]pgtype.Date, n), make([]pgtype.Date, n)
	)
	for i, id := range ids {
		o := d.orders[id]
		sale[i], status[i], ref[i], paidAmount[i] = o.sale, o.status, o.ref, o.paidAmount
		if pl := o.placed; pl != nil {
			user[i], qty[i], price[i], total[i], payBy[i] = pl.UserID, pl.Quantity, pl.PriceCents, pl.AmountCents, ts(pl.PayBy)
		}
		placedAt[i], paidAt[i], closedAt[i] = ts(o.placedAt), ts(o.paidAt), ts(o.closedAt)
		placedDay[i], paidDay[i], closedDay[i] = p.day(o.placedAt), p.day(o.paidAt), p.day(o.closedAt)
	}
	b.Queue(p.sql.orders, ids, sale, user, qty, price, total, status, ref, payBy, placedAt, placedDay,
		paidAt, paidDay, paidAmount, closedAt, closedDay)
}

// queueSales queues the statement that records d's new sales.
func (p *Daily) queueSales(b *pgx.Batch, d *dailyBatch) {
	n := len(d.saleIDs)
	if n == 0 {
		return
	}
	name, currency, price := make([]string, n), make([]string, n), make([]int64, n)
	for i, id := range d.saleIDs {
		s := d.sales[id]
		name[i], currency[i], price[i] = s.name, s.currency, s.price
	}
	b.Queue(p.sql.sales, d.saleIDs, name, currency, price)
}

// DailyRow is one line of the daily report: one business day of one sale.
type DailyRow struct {
	// Day is the business day, YYYY-MM-DD in the projection's time zone.
	Day      string `json:"day"`
	SaleID   string `json:"sale_id"`
	SaleName string `json:"sale_name"`
	Currency string `json:"currency"`
	// Placed, Paid and Expired count orders placed, paid and expired that
	// day (an order placed on Monday and paid on Tuesday counts on both).
	Placed  int64 `json:"placed"`
	Paid    int64 `json:"paid"`
	Expired int64 `json:"expired"`
	// RevenueCents is the amount of the orders paid that day.
	RevenueCents int64 `json:"revenue_cents"`
	// Buyers is the number of distinct users who placed an order that day.
	Buyers int64 `json:"buyers"`
}

// DailyReport returns the summary rows of the business days from through to
// (both included, dates in the projection's time zone), by day and sale.
func (p *Daily) DailyReport(ctx context.Context, from, to time.Time) ([]DailyRow, error) {
	rows, err := p.pool.Query(ctx, p.sql.report, pgDate(from), pgDate(to))
	if err != nil {
		return nil, fmt.Errorf("daily report: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DailyRow, error) {
		var r DailyRow
		var day time.Time
		err := row.Scan(&day, &r.SaleID, &r.SaleName, &r.Currency, &r.Placed, &r.Paid, &r.Expired, &r.RevenueCents, &r.Buyers)
		r.Day = day.Format(time.DateOnly)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("daily report: %w", err)
	}
	return out, nil
}

// pgDate is the calendar date of t as written (not converted to UTC).
func pgDate(t time.Time) pgtype.Date {
	y, m, d := t.Date()
	return pgtype.Date{Time: time.Date(y, m, d, 0, 0, 0, 0, time.UTC), Valid: true}
}
