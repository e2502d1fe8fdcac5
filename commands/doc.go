// Package commands owns the write side: the Redis gate where every decision that
// must be atomic happens in one Lua script (create a sale, purchase, pay, expire,
// end), the command handlers around those scripts, and the expiry sweeper. Each
// script also appends its events to the sale's outbox stream in the same call,
// so nothing is ever decided without being recorded.
package commands
