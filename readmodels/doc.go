// Package readmodels holds the read models that the projection engine
// (package projections) builds from the log in Postgres, and the queries
// that read them: orders (one row per order, and one per sale), inventory
// (per sale: initial, reserved, paid, released, available) and daily (every
// seckill order in the everyday order format, with a per-day summary). Each
// is a projections.Rebuildable: it takes its table names as configuration,
// so a rebuild can build it in shadow tables (see docs/projections.md).
package readmodels

// Projection names. They are the Kafka consumer group of the projection and
// the key of its checkpoints. Never rename one: as watermill warns for handler
// names, a new consumer-group name starts from the oldest offset and
// re-consumes the whole log (and a new checkpoint key re-applies it).
const (
	NameOrders    = "orders"
	NameInventory = "inventory"
	NameDaily     = "daily"
)
