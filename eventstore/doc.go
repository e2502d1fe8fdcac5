// Package eventstore is the log: the Kafka topic that is the system's source of
// truth, and everything that writes or reads it directly. It holds the embedded
// Kafka-protocol broker used by `seckill dev` and `seckill broker` (kfake with a
// data directory), topic creation, the watermill-kafka publisher and subscriber
// factories configured as CONTRACTS.md asks (idempotent producer, acks from all
// replicas, key = aggregate id, new groups from the oldest offset), and a
// group-less reader for rebuilds, audits and analysts. The outbox relay that
// forwards the gate's Redis outbox streams to the topic is package outbox.
//
// Delivery into and out of the log is at-least-once; every envelope carries a
// unique id, and consumers deduplicate by it.
package eventstore
