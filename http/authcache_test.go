package http

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVerifiedCache: the cache changes no answer. It serves only the exact
// bytes of a token that verified, and only until the parser would have
// refused it.
func TestVerifiedCache(t *testing.T) {
	t.Parallel()
	auth, err := NewAuthenticator([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewToken([]byte(testSecret), "alice", false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second answer comes from the cache
		if id, err := auth.Verify(tok); err != nil || id != (Identity{UserID: "alice"}) {
			t.Fatalf("Verify = %+v, %v", id, err)
		}
	}
	// A cached token does not vouch for a neighbour.
	dot := strings.LastIndexByte(tok, '.')
	for _, bad := range []string{tok + "x", tok[:dot+1] + "A" + tok[dot+2:], tok[:len(tok)-1], strings.Replace(tok, "e", "f", 1)} {
		if bad == tok {
			continue
		}
		if id, err := auth.Verify(bad); err == nil {
			t.Errorf("altered token verified as %+v", id)
		}
	}
	// Entries end with the token: expiry plus the parser's leeway.
	c := newVerifiedCache()
	exp := time.Unix(1_800_000_000, 0)
	c.put("t", Identity{UserID: "bob"}, exp)
	if _, ok := c.get("t", exp.Add(jwtLeeway-time.Nanosecond)); !ok {
		t.Error("entry gone before the token's expiry plus leeway")
	}
	if _, ok := c.get("t", exp.Add(jwtLeeway)); ok {
		t.Error("entry served after the token's expiry plus leeway")
	}
	// The cache stays bounded.
	for i := range 20 * verifiedPerShard {
		c.put(strconv.Itoa(i), Identity{UserID: "u"}, exp)
	}
	total := 0
	for i := range c.shards {
		total += len(c.shards[i].m)
	}
	if total > len(c.shards)*verifiedPerShard {
		t.Errorf("cache holds %d entries, bound is %d", total, len(c.shards)*verifiedPerShard)
	}
}
