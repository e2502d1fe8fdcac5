-- The daily-order read model (seed 000's 日常): every seckill order mirrored
-- into the everyday order system's format, and a per-day summary on top. The
-- daily projection may write to a database of its own (the everyday order
-- database); `seckill migrate` and `seckill serve` apply every migration to
-- it too, so it also has the checkpoint and dead-letter tables that must
-- commit in the same transaction as its rows.

-- +goose Up

-- daily_orders: one row per seckill order in the everyday order format,
-- status kept current: pending_payment → paid | closed (expired unpaid).
CREATE TABLE daily_orders (
    order_no         text        PRIMARY KEY,           -- the seckill order id
    source           text        NOT NULL DEFAULT 'seckill',
    user_id          text        NOT NULL DEFAULT '',
    item_id          text        NOT NULL DEFAULT '',   -- the sale id
    quantity         bigint      NOT NULL DEFAULT 0,
    unit_price_cents bigint      NOT NULL DEFAULT 0,
    total_cents      bigint      NOT NULL DEFAULT 0,
    status           text        NOT NULL DEFAULT ''
                     CHECK (status IN ('', 'pending_payment', 'paid', 'closed')),
    payment_ref      text        NOT NULL DEFAULT '',
    pay_by           timestamptz,
    placed_at        timestamptz,
    paid_at          timestamptz,
    closed_at        timestamptz,
    -- business_day is placed_at's date in the projection's time zone.
    business_day     date,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX daily_orders_user_idx ON daily_orders (user_id, placed_at DESC);
CREATE INDEX daily_orders_day_idx ON daily_orders (business_day, item_id);

-- daily_sales: name and currency of each sale, for the report.
CREATE TABLE daily_sales (
    sale_id     text   PRIMARY KEY,
    name        text   NOT NULL DEFAULT '',
    currency    text   NOT NULL DEFAULT '',
    price_cents bigint NOT NULL DEFAULT 0
);

-- daily_buyers: who placed an order per business day and sale, so that the
-- summary counts each buyer once.
CREATE TABLE daily_buyers (
    day     date NOT NULL,
    sale_id text NOT NULL,
    user_id text NOT NULL,
    PRIMARY KEY (day, sale_id, user_id)
);

-- daily_summary: per business day and sale, counted when daily_orders rows
-- change state (so duplicates count once): orders placed that day, paid that
-- day (and their revenue), expired that day, distinct buyers that day.
CREATE TABLE daily_summary (
    day           date        NOT NULL,
    sale_id       text        NOT NULL,
    placed        bigint      NOT NULL DEFAULT 0,
    paid          bigint      NOT NULL DEFAULT 0,
    expired       bigint      NOT NULL DEFAULT 0,
    revenue_cents bigint      NOT NULL DEFAULT 0,
    buyers        bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, sale_id)
);

-- +goose Down
DROP TABLE daily_summary;
DROP TABLE daily_buyers;
DROP TABLE daily_sales;
DROP TABLE daily_orders;
