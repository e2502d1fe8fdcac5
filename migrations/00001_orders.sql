-- The read models of the orders projection and the bookkeeping every
-- projection shares (checkpoints, dead letters). Later projections add their
-- own numbered files (00002_inventory.sql, 00003_daily.sql, ...).

-- +goose Up

-- orders: one row per order, folded from StockReserved, OrderPlaced,
-- OrderPaid, OrderExpired and StockReleased. Columns the log has not told yet
-- are '' / 0 / NULL; status stays '' until OrderPlaced is seen (the fold's
-- "not placed yet"), so queries hide such rows.
CREATE TABLE orders (
    order_id     text        PRIMARY KEY,
    sale_id      text        NOT NULL DEFAULT '',
    user_id      text        NOT NULL DEFAULT '',
    quantity     bigint      NOT NULL DEFAULT 0,
    price_cents  bigint      NOT NULL DEFAULT 0,
    amount_cents bigint      NOT NULL DEFAULT 0,
    status       text        NOT NULL DEFAULT ''
                 CHECK (status IN ('', 'reserved', 'paid', 'expired')),
    pay_by       timestamptz,
    payment_ref  text        NOT NULL DEFAULT '',
    placed_at    timestamptz,
    paid_at      timestamptz,
    expired_at   timestamptz,
    -- history is a JSON array of {"type", "at"}, at most one entry per event
    -- type (an order has at most one event of each type: event ids are
    -- <order_id>/<type>), in the order the log delivered them.
    history      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- "My orders", newest first.
CREATE INDEX orders_user_placed_idx ON orders (user_id, placed_at DESC);
-- Orders of one sale (admin views, audits).
CREATE INDEX orders_sale_idx ON orders (sale_id, status);

-- sales: the sale read model from SaleCreated and SaleEnded. created_at is
-- NULL until SaleCreated is seen (a SaleEnded may be applied first), so
-- queries hide such rows.
CREATE TABLE sales (
    id             text        PRIMARY KEY,
    name           text        NOT NULL DEFAULT '',
    stock          bigint      NOT NULL DEFAULT 0,
    price_cents    bigint      NOT NULL DEFAULT 0,
    currency       text        NOT NULL DEFAULT '',
    starts_at      timestamptz,
    ends_at        timestamptz,
    per_user_limit bigint      NOT NULL DEFAULT 0,
    pay_within_s   bigint      NOT NULL DEFAULT 0,
    ended          boolean     NOT NULL DEFAULT false,
    end_reason     text        NOT NULL DEFAULT '',
    unsold         bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz,
    ended_at       timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sales_created_idx ON sales (created_at DESC);

-- projection_checkpoints: the last log offset each projection applied, per
-- topic partition. It is written in the same transaction as the projection's
-- rows, which is what makes applying exactly-once in effect.
CREATE TABLE projection_checkpoints (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, "partition")
);

-- projection_dead_letters: records a projection could not apply (undecodable,
-- unknown type, rejected data). The checkpoint moves past them so a partition
-- never blocks; a rebuild after a fix can replay them from the log.
CREATE TABLE projection_dead_letters (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    event_id    text        NOT NULL DEFAULT '',
    reason      text        NOT NULL,
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- A record is dead-lettered once per projection even if it is redelivered.
    UNIQUE (projection, topic, "partition", "offset")
);

-- +goose Down
DROP TABLE projection_dead_letters;
DROP TABLE projection_checkpoints;
DROP TABLE sales;
DROP TABLE orders;
