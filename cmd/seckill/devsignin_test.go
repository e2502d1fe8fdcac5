package main

import (
	"io"
	"testing"
)

func TestEnvBool(t *testing.T) {
	tests := map[string]bool{"": false, "true": true, "1": true, "TRUE": true, "false": false, "0": false, "yes": false, "on": false}
	for v, want := range tests {
		c := cli{getenv: func(string) string { return v }, stdout: io.Discard, stderr: io.Discard}
		if got := envBool(c, "SECKILL_DEV_SIGN_IN"); got != want {
			t.Errorf("envBool(%q) = %v, want %v", v, got, want)
		}
	}
}
