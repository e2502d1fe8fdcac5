-- Dead letters also go to a Kafka topic (default seckill.events.dlq) for
-- whoever repairs them. The table stays the record, written in the same
-- transaction as the checkpoint that moves past the poison; published_at is
-- its outbox flag: NULL until the letter is on the topic.

-- +goose Up
ALTER TABLE projection_dead_letters
    ADD COLUMN record_key   bytea,
    ADD COLUMN published_at timestamptz;

CREATE INDEX projection_dead_letters_unpublished_idx
    ON projection_dead_letters (projection, id) WHERE published_at IS NULL;

-- +goose Down
DROP INDEX projection_dead_letters_unpublished_idx;
ALTER TABLE projection_dead_letters DROP COLUMN published_at, DROP COLUMN record_key;
