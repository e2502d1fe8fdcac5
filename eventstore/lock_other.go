//go:build !unix

package eventstore

// lockFile is a no-op where flock is not available: nothing stops two brokers
// from sharing a data dir there.
func lockFile(string) (func() error, error) { return func() error { return nil }, nil }
