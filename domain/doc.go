// Package domain owns the language of a flash sale: the events that make up the
// log (the source of truth), their envelope and JSON codec with its upcaster
// chain, the value types of a sale and an order, the sentinel errors of every
// decision, and the pure fold of events into state that audit, restore and the
// read-model checks share. It performs no I/O and imports nothing of ours.
package domain
