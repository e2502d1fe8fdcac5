// Package projections is the engine that turns the event log into Postgres
// read models (the read models themselves live in package readmodels; see
// docs/projections.md).
//
// Each read model implements Projection. A Consumer runs it live: it consumes
// the Kafka topic in a consumer group named after the projection (franz-go),
// seeks each assigned partition to the projection's position in Postgres, and
// hands what it fetched, in big batches, to an Applier, which applies a batch
// in ONE transaction together with the projection's position per partition
// (its checkpoint). An event at or below the stored position is skipped, and
// every projection also deduplicates events that sit in the log twice at
// different offsets (the relay publishes at least once), so the effect is
// exactly once although delivery is at least once. Events that can never be
// applied are dead-lettered, and published to a dead-letter topic.
//
// Rebuild feeds the same Applier from the log read directly
// (eventstore.ReadRange) into
// shadow tables, then swaps them in; projections therefore take their table
// names as configuration (Rebuildable). A Monitor reports positions, lag and
// dead letters, also as Prometheus metrics.
package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/domain"
)

// DefaultTopic is the log's topic (docs/CONTRACTS.md).
const DefaultTopic = "seckill.events"

// Event is one decoded event of the log with its place in it.
type Event struct {
	// Envelope is the decoded envelope, upcast to the current schema version.
	Envelope domain.Envelope
	// Event is the decoded payload: one of the domain event value types.
	Event     domain.Event
	Topic     string
	Partition int32
	Offset    int64
}

// Projection is one read model. The engine calls Apply with the events of a
// batch that are past the projection's checkpoint, in log order per
// partition, inside the transaction that also moves the checkpoint.
type Projection interface {
	// Name is the projection's stable name (see readmodels.NameOrders): its consumer
	// group and checkpoint key.
	Name() string
	// Apply writes the effect of batch through tx and nothing else: it must
	// not commit or roll back. Applying an event twice must change nothing,
	// because a batch may hold the same event twice (the relay publishes at
	// least once, so duplicates sit at different offsets). A returned error
	// aborts the whole batch; an error that wraps ErrPoison, or a Postgres
	// data or integrity error (SQLSTATE class 22 or 23), makes the engine
	// retry the batch event by event and dead-letter the events that fail.
	// Any other error is treated as transient and retried with backoff.
	Apply(ctx context.Context, tx pgx.Tx, batch []Event) error
}

// ErrPoison marks an event a projection can never apply (for example a payload
// that breaks an invariant the projection relies on). Wrap it in the error
// Apply returns: the engine dead-letters the event instead of retrying.
var ErrPoison = errors.New("poison event")

// Table is a possibly schema-qualified table name, quoted for SQL.
type Table string

// ParseTable validates name ("orders" or "shadow.orders") and returns it
// quoted, so callers can point a projection at shadow tables safely.
func ParseTable(name string) (Table, error) {
	if name == "" {
		return "", errors.New("empty table name")
	}
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", fmt.Errorf("table name %q: at most schema.table", name)
	}
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("table name %q: empty part", name)
		}
	}
	return Table(pgx.Identifier(parts).Sanitize()), nil
}

// Rebuildable is a Projection that a rebuild can build from offset zero into
// shadow tables while the live one keeps serving (see Rebuild).
type Rebuildable interface {
	Projection
	// Tables lists every table the projection writes, as configured
	// ("orders" or "schema.orders"). A rebuild shadows and swaps them all.
	Tables() []string
	// InSchema returns the same projection writing to tables of the same
	// names in schema instead.
	InSchema(schema string) (Projection, error)
}

// InSchema is table name moved to schema: "orders" or "public.orders" in
// schema "rebuild_orders" is "rebuild_orders.orders".
func InSchema(schema, name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return schema + "." + name
}
