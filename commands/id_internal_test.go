package commands

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"testing"
)

// TestIDEncoding: ids keep the form they always had (lower-case standard
// base32), now encoded in one step.
func TestIDEncoding(t *testing.T) {
	for range 1000 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		want := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
		if got := idEncoding.EncodeToString(b[:]); got != want {
			t.Fatalf("%x: %q, want %q", b, got, want)
		}
	}
}
