-- The inventory read model: per sale, where its units are. Every counter is a
-- sum of event quantities, so an event applied twice would count twice; the
-- projection therefore keeps, per order, which of its events it has applied
-- (inventory_orders.applied), and adds an event's quantity only when it sets
-- the event's bit there. Checkpoints alone would not do: the relay publishes
-- at least once, so the same event can sit in the log at two offsets.

-- +goose Up

-- inventory: the counters of domain.SaleState, named as there. What users
-- see is derived from them (projections.InventoryView):
--   reserved  = reserved_qty - paid_qty - expired_qty   (outstanding)
--   released  = released_qty + unsold
--   available = stock - reserved_qty + pool_qty - unsold
CREATE TABLE inventory (
    sale_id      text        PRIMARY KEY,
    -- known is false until the sale's SaleCreated is applied (order events
    -- of other partitions may come first); queries hide such rows.
    known        boolean     NOT NULL DEFAULT false,
    stock        bigint      NOT NULL DEFAULT 0,
    reserved_qty bigint      NOT NULL DEFAULT 0, -- units ever reserved
    paid_qty     bigint      NOT NULL DEFAULT 0,
    expired_qty  bigint      NOT NULL DEFAULT 0,
    released_qty bigint      NOT NULL DEFAULT 0, -- units released by expiry
    pool_qty     bigint      NOT NULL DEFAULT 0, -- of those, back into the pool
    ended        boolean     NOT NULL DEFAULT false,
    unsold       bigint      NOT NULL DEFAULT 0, -- the pool returned at the end
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- inventory_orders: which events of each order the inventory has counted, as
-- bits (1 StockReserved, 4 OrderPaid, 8 OrderExpired, 16 StockReleased; see
-- projections/orders.go). One small row per order, kept forever, like the log.
CREATE TABLE inventory_orders (
    order_id text     PRIMARY KEY,
    sale_id  text     NOT NULL,
    applied  smallint NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE inventory_orders;
DROP TABLE inventory;
