-- The inventory-return feed (issue 17; seed 000's 数据隔离: "秒杀活动结束后，
-- 剩余库存可以归还到日常库存继续做为普通商品售卖"). The units a sale hands back to
-- everyday inventory, one row per event that hands them back: the pool at the
-- end (SaleEnded.unsold) and every order that expired after the end
-- (StockReleased with to_pool false). The daily projection writes it with the
-- daily-order mirror, in the everyday order database when it has its own; the
-- everyday system pulls it at its own pace with GET /v1/inventory/returns.
--
-- The cursor is the event's place in the log (partition, offset): each
-- partition is applied in offset order by one consumer, in transactions that
-- commit in that order, so a reader that has seen an offset of a partition has
-- seen every earlier one; and a rebuild writes the same positions, so a
-- reader's cursor survives it. event_id is unique: the relay publishes at
-- least once, and a second copy of an event (a later offset of the same
-- partition) is not a second return.

-- +goose Up
CREATE TABLE daily_returns (
    log_partition integer     NOT NULL,
    log_offset    bigint      NOT NULL,
    event_id      text        NOT NULL UNIQUE,
    sale_id       text        NOT NULL,
    order_id      text        NOT NULL DEFAULT '',  -- the expired order; '' for the unsold pool
    reason        text        NOT NULL CHECK (reason IN ('unsold', 'expired_after_end')),
    quantity      bigint      NOT NULL CHECK (quantity > 0),
    occurred_at   timestamptz NOT NULL,
    PRIMARY KEY (log_partition, log_offset)
);

CREATE INDEX daily_returns_sale_idx ON daily_returns (sale_id);

-- +goose Down
DROP TABLE daily_returns;
