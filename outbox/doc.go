// Package outbox forwards the gate's Redis outbox streams to the log: the
// Relay reads each sale's outbox stream (under a lease, so one relay at a time
// forwards a stream), publishes its events through an eventstore.Publisher
// keyed by aggregate id, and only then trims what was published. Delivery is
// at least once; every envelope carries a unique id, and consumers
// deduplicate by it (docs/CONTRACTS.md, "The Redis outbox").
package outbox
