package readmodels

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
)

// InventoryConfig configures the inventory projection.
type InventoryConfig struct {
	// Table holds one row of counters per sale ("schema.table" allowed).
	// Default "inventory".
	Table string
	// OrdersTable holds, per order, which of its events the counters
	// include. Default "inventory_orders".
	OrdersTable string
}

func (c *InventoryConfig) setDefaults() {
	if c.Table == "" {
		c.Table = "inventory"
	}
	if c.OrdersTable == "" {
		c.OrdersTable = "inventory_orders"
	}
}

// Validate reports every invalid field, joined.
func (c InventoryConfig) Validate() error {
	var errs []error
	if _, err := projections.ParseTable(c.Table); err != nil {
		errs = append(errs, fmt.Errorf("inventory table: %w", err))
	}
	if _, err := projections.ParseTable(c.OrdersTable); err != nil {
		errs = append(errs, fmt.Errorf("inventory orders table: %w", err))
	}
	return errors.Join(errs...)
}

// Inventory is the inventory projection: per sale, its initial stock and
// where the units are (reserved, paid, released, available), equal to the
// fold's domain.SaleState at the same position of the log.
//
// The counters are sums, so an event counted twice would be wrong for good.
// The checkpoint skips redeliveries at or below it, but the relay publishes
// at least once, so the same event can also sit at a second, later offset;
// that copy passes the checkpoint. So the projection keeps, per order, a bit
// for each event type it has counted (event ids are <order>/<type>: one
// event per type and order), and counts an event only when its bit was not
// set yet, in the same statement that sets it. Sale events are guarded by
// the row's own flags (known, ended).
type Inventory struct {
	pool *pgxpool.Pool
	cfg  InventoryConfig
	sql  struct{ orders, sales, get string }
}

// NewInventory returns the inventory projection over the tables of cfg. pool
// is used by the queries only; Apply writes through the transaction it is
// given.
func NewInventory(cfg InventoryConfig, pool *pgxpool.Pool) (*Inventory, error) {
	cfg.setDefaults()
	if err := checkNew("inventory", cfg.Validate(), pool); err != nil {
		return nil, err
	}
	inv, _ := projections.ParseTable(cfg.Table)
	ords, _ := projections.ParseTable(cfg.OrdersTable)
	p := &Inventory{pool: pool, cfg: cfg}
	// old is read in the statement's snapshot, before marks sets the bits,
	// so fresh is exactly the bits this statement sets: the events counted
	// now. FOR UPDATE keeps that true even if two transactions ever raced on
	// one order (the checkpoint rows already serialize a partition, and an
	// order's events share one).
	p.sql.orders = `WITH d AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::bigint[],
				$7::bigint[], $8::bigint[]) AS u(id, sale, bits, res, paid, exp, rel, pool)),
		old AS (
			SELECT io.order_id, io.applied FROM ` + string(ords) + ` io JOIN d ON io.order_id = d.id FOR UPDATE OF io),
		f AS (
			SELECT d.*, d.bits & ~coalesce(old.applied::int, 0) AS fresh FROM d LEFT JOIN old ON old.order_id = d.id),
		marks AS (
			INSERT INTO ` + string(ords) + ` AS io (order_id, sale_id, applied) SELECT id, sale, bits FROM d
			ON CONFLICT (order_id) DO UPDATE SET applied = io.applied | EXCLUDED.applied
			WHERE io.applied & EXCLUDED.applied <> EXCLUDED.applied)
		INSERT INTO ` + string(inv) + ` AS i (sale_id, reserved_qty, paid_qty, expired_qty, released_qty, pool_qty)
		SELECT sale,
			sum(CASE WHEN fresh & 1 <> 0 THEN res ELSE 0 END),
			sum(CASE WHEN fresh & 4 <> 0 THEN paid ELSE 0 END),
			sum(CASE WHEN fresh & 8 <> 0 THEN exp ELSE 0 END),
			sum(CASE WHEN fresh & 16 <> 0 THEN rel ELSE 0 END),
			sum(CASE WHEN fresh & 16 <> 0 THEN pool ELSE 0 END)
		FROM f WHERE fresh <> 0 GROUP BY sale
		ON CONFLICT (sale_id) DO UPDATE SET
			reserved_qty = i.reserved_qty + EXCLUDED.reserved_qty,
			paid_qty = i.paid_qty + EXCLUDED.paid_qty,
			expired_qty = i.expired_qty + EXCLUDED.expired_qty,
			released_qty = i.released_qty + EXCLUDED.released_qty,
			pool_qty = i.pool_qty + EXCLUDED.pool_qty,
			updated_at = now()`
	// A sale is created once (the first SaleCreated sets the stock) and
	// ends once (the first SaleEnded sets the unsold pool).
	p.sql.sales = `INSERT INTO ` + string(inv) + ` AS i (sale_id, known, stock, ended, unsold)
		SELECT * FROM unnest($1::text[], $2::bool[], $3::bigint[], $4::bool[], $5::bigint[])
		ON CONFLICT (sale_id) DO UPDATE SET
			known = i.known OR EXCLUDED.known,
			stock = CASE WHEN i.known THEN i.stock ELSE EXCLUDED.stock END,
			ended = i.ended OR EXCLUDED.ended,
			unsold = CASE WHEN i.ended THEN i.unsold ELSE EXCLUDED.unsold END,
			updated_at = now()
		WHERE (NOT i.known AND EXCLUDED.known) OR (NOT i.ended AND EXCLUDED.ended)`
	p.sql.get = `SELECT sale_id, stock, reserved_qty, paid_qty, expired_qty, released_qty, pool_qty, ended, unsold, updated_at
		FROM ` + string(inv) + ` WHERE sale_id = $1 AND known`
	return p, nil
}

// Name returns NameInventory.
func (*Inventory) Name() string { return NameInventory }

// Tables returns the counters and bookkeeping tables.
func (p *Inventory) Tables() []string { return []string{p.cfg.Table, p.cfg.OrdersTable} }

// InSchema returns the inventory projection over tables of the same names in
// schema, for a rebuild.
func (p *Inventory) InSchema(schema string) (projections.Projection, error) {
	return NewInventory(InventoryConfig{
		Table:       projections.InSchema(schema, p.cfg.Table),
		OrdersTable: projections.InSchema(schema, p.cfg.OrdersTable),
	}, p.pool)
}

// invOrder is what one batch says about one order's units: the first event
// of each type (a second one is a duplicate).
type invOrder struct {
	sale                      string
	bits                      uint8
	res, paid, exp, rel, pool int64
}

// invSale is what one batch says about a sale: its stock once created, its
// unsold units once ended.
type invSale struct {
	known, ended  bool
	stock, unsold int64
}

// invBatch is what one Apply gathers before it writes: the orders and the
// sales of the batch, each in the order first seen.
type invBatch struct {
	orders   map[string]*invOrder
	orderIDs []string
	sales    map[string]*invSale
	saleIDs  []string
}

func (d *invBatch) add(e domain.Event) {
	switch ev := e.(type) {
	case domain.SaleCreated, domain.SaleEnded:
		d.sale(ev.AggregateID()).apply(ev)
	case domain.StockReserved, domain.OrderPaid, domain.OrderExpired, domain.StockReleased:
		d.order(ev.AggregateID()).apply(ev)
	}
	// OrderPlaced and unknown types do not move units.
}

func (d *invBatch) sale(id string) *invSale { return entry(d.sales, &d.saleIDs, id) }

func (d *invBatch) order(id string) *invOrder { return entry(d.orders, &d.orderIDs, id) }

// entry returns m's value for id, adding a zero one (and id to ids, which
// keep the batch's first-seen order) when there is none.
func entry[T any](m map[string]*T, ids *[]string, id string) *T {
	v := m[id]
	if v == nil {
		v = new(T)
		m[id] = v
		*ids = append(*ids, id)
	}
	return v
}

// apply takes the first SaleCreated and the first SaleEnded of the batch.
func (s *invSale) apply(e domain.Event) {
	switch ev := e.(type) {
	case domain.SaleCreated:
		if !s.known {
			s.known, s.stock = true, ev.Stock
		}
	case domain.SaleEnded:
		if !s.ended {
			s.ended, s.unsold = true, ev.Unsold
		}
	}
}

// apply counts the order's units of e unless the batch had e's type already.
func (o *invOrder) apply(e domain.Event) {
	bit := orderBit(e.EventType())
	if o.bits&bit != 0 {
		return // the same event again
	}
	o.bits |= bit
	switch ev := e.(type) {
	case domain.StockReserved:
		o.sale, o.res = ev.SaleID, ev.Quantity
	case domain.OrderPaid:
		o.sale, o.paid = ev.SaleID, ev.Quantity
	case domain.OrderExpired:
		o.sale, o.exp = ev.SaleID, ev.Quantity
	case domain.StockReleased:
		o.sale, o.rel = ev.SaleID, ev.Quantity
		if ev.ToPool {
			o.pool = ev.Quantity
		}
	}
}

// Apply applies batch through tx in one round trip: one statement counts
// the order events not counted before, grouped by sale, and one applies the
// sale events.
func (p *Inventory) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	d := invBatch{orders: map[string]*invOrder{}, sales: map[string]*invSale{}}
	for _, e := range batch {
		d.add(e.Event)
	}
	b := &pgx.Batch{}
	if n := len(d.orderIDs); n > 0 {
		sale := make([]string, n)
		bits := make([]int32, n)
		res, paid, exp, rel, pool := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		for i, id := range d.orderIDs {
			o := d.orders[id]
			sale[i], bits[i] = o.sale, int32(o.bits)
			res[i], paid[i], exp[i], rel[i], pool[i] = o.res, o.paid, o.exp, o.rel, o.pool
		}
		b.Queue(p.sql.orders, d.orderIDs, sale, bits, res, paid, exp, rel, pool)
	}
	if n := len(d.saleIDs); n > 0 {
		known, ended := make([]bool, n), make([]bool, n)
		stock, unsold := make([]int64, n), make([]int64, n)
		for i, id := range d.saleIDs {
			s := d.sales[id]
			known[i], ended[i], stock[i], unsold[i] = s.known, s.ended, s.stock, s.unsold
		}
		b.Queue(p.sql.sales, d.saleIDs, known, stock, ended, unsold)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	return nil
}

// InventoryView is a sale's inventory as the read model has it. It equals the
// fold of the log up to the projection's position: Initial is
// SaleState.Stock, Reserved Outstanding(), Paid PaidQty, Released Released(),
// Available Remaining().
type InventoryView struct {
	SaleID string `json:"sale_id"`
	// Initial is the stock the sale was created with.
	Initial int64 `json:"initial"`
	// Reserved is units held by orders not yet paid or expired.
	Reserved int64 `json:"reserved"`
	// Paid is units of paid orders.
	Paid int64 `json:"paid"`
	// Released is units given back: by expired orders, plus the unsold pool
	// returned to regular inventory when the sale ended.
	Released int64 `json:"released"`
	// Available is the sale's purchasable pool (0 once it ended).
	Available int64 `json:"available"`
	// Expired is units of expired orders; Unsold the pool returned at the end.
	Expired int64 `json:"expired"`
	Unsold  int64 `json:"unsold"`
	Ended   bool  `json:"ended"`
	// UpdatedAt is when the row last changed.
	UpdatedAt time.Time `json:"updated_at"`
}

// GetInventory returns the inventory of sale id, or domain.ErrSaleNotFound if
// the projection has not applied its SaleCreated.
func (p *Inventory) GetInventory(ctx context.Context, id string) (InventoryView, error) {
	var v InventoryView
	var reservedQty, releasedQty, poolQty int64
	err := p.pool.QueryRow(ctx, p.sql.get, id).Scan(&v.SaleID, &v.Initial, &reservedQty, &v.Paid, &v.Expired,
		&releasedQty, &poolQty, &v.Ended, &v.Unsold, &v.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return InventoryView{}, fmt.Errorf("inventory of %s: %w", id, domain.ErrSaleNotFound)
	}
	if err != nil {
		return InventoryView{}, fmt.Errorf("inventory of %s: %w", id, err)
	}
	// The same arithmetic as domain.SaleState, on the same counters.
	v.Reserved = reservedQty - v.Paid - v.Expired
	v.Released = releasedQty + v.Unsold
	v.Available = v.Initial - reservedQty + poolQty - v.Unsold
	v.UpdatedAt = v.UpdatedAt.UTC()
	return v, nil
}
