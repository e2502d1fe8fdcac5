package main

import "strconv"

// envBool reads a boolean switch from the environment ("true", "1", ...).
// Unset or unreadable is false: the switches it reads turn on things that
// must stay off unless someone clearly asked for them.
func envBool(c cli, key string) bool {
	b, err := strconv.ParseBool(c.getenv(key))
	return err == nil && b
}
