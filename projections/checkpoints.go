package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Position is how far a projection has applied one topic partition.
type Position struct {
	Projection string `json:"projection"`
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	// Offset is the last offset applied; the next record to apply is Offset+1.
	Offset    int64     `json:"offset"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ReadPositions returns the positions of projection stored in checkpointTable
// (DefaultCheckpointTable if empty), ordered by topic and partition. The lag
// of a partition is its end offset in Kafka minus Offset+1.
func ReadPositions(ctx context.Context, pool *pgxpool.Pool, checkpointTable, projection string) ([]Position, error) {
	if checkpointTable == "" {
		checkpointTable = DefaultCheckpointTable
	}
	t, err := ParseTable(checkpointTable)
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	rows, err := pool.Query(ctx, `SELECT projection, topic, "partition", "offset", updated_at FROM `+string(t)+`
		WHERE projection = $1 AND "offset" >= 0 ORDER BY topic, "partition"`, projection)
	if err != nil {
		return nil, fmt.Errorf("read positions of %s: %w", projection, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Position, error) {
		var p Position
		err := row.Scan(&p.Projection, &p.Topic, &p.Partition, &p.Offset, &p.UpdatedAt)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read positions of %s: %w", projection, err)
	}
	return out, nil
}

// DeadLetter is a record a projection could not apply.
type DeadLetter struct {
	ID         int64     `json:"id"`
	Projection string    `json:"projection"`
	Topic      string    `json:"topic"`
	Partition  int32     `json:"partition"`
	Offset     int64     `json:"offset"`
	EventID    string    `json:"event_id,omitempty"`
	Reason     string    `json:"reason"`
	Payload    []byte    `json:"payload"`
	CreatedAt  time.Time `json:"created_at"`
}

// ReadDeadLetters returns up to limit dead letters of projection from
// deadLetterTable (DefaultDeadLetterTable if empty), oldest first.
func ReadDeadLetters(ctx context.Context, pool *pgxpool.Pool, deadLetterTable, projection string, limit int) ([]DeadLetter, error) {
	if deadLetterTable == "" {
		deadLetterTable = DefaultDeadLetterTable
	}
	t, err := ParseTable(deadLetterTable)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := pool.Query(ctx, `SELECT id, projection, topic, "partition", "offset", event_id, reason, payload, created_at
		FROM `+string(t)+` WHERE projection = $1 ORDER BY id LIMIT $2`, projection, limit)
	if err != nil {
		return nil, fmt.Errorf("read dead letters of %s: %w", projection, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeadLetter, error) {
		var d DeadLetter
		err := row.Scan(&d.ID, &d.Projection, &d.Topic, &d.Partition, &d.Offset, &d.EventID, &d.Reason, &d.Payload, &d.CreatedAt)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read dead letters of %s: %w", projection, err)
	}
	return out, nil
}
