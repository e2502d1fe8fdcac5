-- Dead letters are parked per aggregate (an order, a sale), as Axon's
-- sequenced dead-letter queue does: once an event of an aggregate is dead-
-- lettered ("parked"), the later events of that aggregate are kept beside it
-- ("held") instead of applied, until an operator retries or discards the
-- parked one; other aggregates flow on. Resolved letters stay as a record.

-- +goose Up
ALTER TABLE projection_dead_letters
    ADD COLUMN aggregate   text        NOT NULL DEFAULT '',
    ADD COLUMN status      text        NOT NULL DEFAULT 'parked'
        CHECK (status IN ('parked', 'held', 'resolved', 'discarded')),
    ADD COLUMN resolved_at timestamptz;

-- The open letters of an aggregate, looked up for every batch applied.
CREATE INDEX projection_dead_letters_open_idx
    ON projection_dead_letters (projection, aggregate) WHERE status IN ('parked', 'held');

-- +goose Down
DROP INDEX projection_dead_letters_open_idx;
ALTER TABLE projection_dead_letters DROP COLUMN resolved_at, DROP COLUMN status, DROP COLUMN aggregate;
