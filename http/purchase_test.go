package http

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
)

// The sold-out answer before the token (http/purchase.go, README "Why the
// sold-out answer needs no signature").

// forged is a token in NewToken's exact shape naming user, signed with
// another secret: it passes every structural check and fails the signature.
func forged(t *testing.T, user string) string {
	t.Helper()
	tok, err := NewToken([]byte("another-secret-of-at-least-32-bytes!!"), user, false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// unsigned is an alg "none" token naming user: no signature at all.
func unsigned(user string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return "Bearer " + enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc([]byte(`{"sub":"`+user+`","exp":4102444800}`)) + "."
}

// verifiedTokens is how many tokens the node's cache of verified tokens holds.
func verifiedTokens(a *Authenticator) int {
	n := 0
	for i := range a.verified.shards {
		sh := &a.verified.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// TestSoldOutBeforeToken: on a sale this node knows sold out, a purchase is
// told sold_out whatever token it carries, without the token being verified;
// everything that reads or changes a user's state still says 401 to the
// same tokens; the owner of an order, retrying, still gets the order (only
// with a token that verifies: a forged one naming them is told sold_out, the
// same as anyone, so the answers say nothing about who holds an order); a
// blocked user is still told blocked.
func TestSoldOutBeforeToken(t *testing.T) {
	t.Parallel()
	api, _ := protectedAPI(t, nil, commands.GateConfig{SoldOutTTL: time.Hour})
	sale := api.createSaleJSON(t, 1, 0, "")["id"].(string)
	open := api.createSaleJSON(t, 10, 0, "")["id"].(string)
	buy := func(sale string, hdr ...string) *httptest.ResponseRecorder {
		return api.call(t, "POST", "/v1/sales/"+sale+"/purchase", `{"quantity":1}`, hdr...)
	}
	first := buy(sale, "Authorization", bearer(t, "alice", false), "Idempotency-Key", "k1")
	if first.Code != http.StatusAccepted {
		t.Fatalf("last unit: %d %s", first.Code, first.Body)
	}
	order := first.Header().Get("Location")
	// The sell-out is known from the script's answer to bob.
	checkRefusal(t, "bob after the sell-out", buy(sale, "Authorization", bearer(t, "bob", false)), refusal{http.StatusConflict, "sold_out", "", 0})
	if soldOut, _ := api.gate.MemorySoldOut(sale, "", ""); !soldOut {
		t.Fatal("the gate does not know the sale sold out")
	}
	if w := api.call(t, "POST", "/v1/admin/blacklist", `{"user_id":"mallory"}`, "Authorization", bearer(t, "admin", true)); w.Code != http.StatusOK {
		t.Fatalf("block mallory: %d %s", w.Code, w.Body)
	}

	bad := []struct{ name, auth string }{
		{"garbage", "Bearer garbage"},
		{"three garbage segments", "Bearer a.b.c"},
		{"forged, a new user", forged(t, "carl")},
		{"unsigned, a new user", unsigned("carl")},
		{"forged, the owner of the order", forged(t, "alice")},
		{"unsigned, the owner of the order", unsigned("alice")},
		{"forged, a blocked user", forged(t, "mallory")},
	}
	cached := verifiedTokens(api.auth)
	for _, tc := range bad {
		checkRefusal(t, tc.name+" on the sold-out sale", buy(sale, "Authorization", tc.auth, "Idempotency-Key", "k1"),
			refusal{http.StatusConflict, "sold_out", "", 0})
	}
	// A new user's valid token is answered without being verified: it does
	// not enter the cache of verified tokens.
	checkRefusal(t, "a new user", buy(sale, "Authorization", bearer(t, "dave", false)), refusal{http.StatusConflict, "sold_out", "", 0})
	if got := verifiedTokens(api.auth); got != cached {
		t.Errorf("sold-out answers verified %d tokens, want none", got-cached)
	}

	// The same tokens anywhere else: 401.
	for _, tc := range bad {
		for _, call := range []struct{ what, method, path, body string }{
			{"purchase of a sale with stock", "POST", "/v1/sales/" + open + "/purchase", `{"quantity":1}`},
			{"the order", "GET", order, ""},
			{"pay", "POST", order + "/pay", `{"payment_ref":"x"}`},
			{"my orders", "GET", "/v1/users/me/orders", ""},
			{"purchase token", "GET", "/v1/sales/" + sale + "/token", ""},
		} {
			checkRefusal(t, tc.name+": "+call.what, api.call(t, call.method, call.path, call.body, "Authorization", tc.auth),
				refusal{http.StatusUnauthorized, "unauthenticated", "", 0})
		}
	}
	checkRefusal(t, "no token on the sold-out sale", buy(sale), refusal{http.StatusUnauthorized, "unauthenticated", "", 0})

	// The exceptions, with tokens that verify.
	retry := buy(sale, "Authorization", bearer(t, "alice", false), "Idempotency-Key", "k1")
	if retry.Code != http.StatusOK || retry.Header().Get("Location") != order {
		t.Errorf("the owner's retry: %d %s, want 200 with %s", retry.Code, retry.Body, order)
	}
	checkRefusal(t, "the owner, another key", buy(sale, "Authorization", bearer(t, "alice", false), "Idempotency-Key", "k2"),
		refusal{http.StatusConflict, "sold_out", "", 0})
	checkRefusal(t, "a blocked user", buy(sale, "Authorization", bearer(t, "mallory", false)), refusal{http.StatusForbidden, "blocked", "", 0})
	// A bad request is still a bad request, token first as everywhere.
	if w := api.call(t, "POST", "/v1/sales/"+sale+"/purchase", `{"quantity":0}`, "Authorization", "Bearer garbage"); w.Code != http.StatusUnauthorized {
		t.Errorf("garbage token, bad body: %d %s, want 401", w.Code, w.Body)
	}
	if w := buy(sale, "Authorization", bearer(t, "erin", false), "Idempotency-Key", strings.Repeat("k", 129)); w.Code != http.StatusBadRequest {
		t.Errorf("a bad Idempotency-Key: %d %s, want 400", w.Code, w.Body)
	}
}

// TestClaimedUser: the user a token names, read without verifying it, and
// "" only where no token that verifies could be this one.
func TestClaimedUser(t *testing.T) {
	t.Parallel()
	good, err := NewToken([]byte(testSecret), "alice", false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct{ name, raw, want string }{
		{"NewToken's shape", good, "alice"},
		{"forged", forged(t, "bob")[len("Bearer "):], "bob"},
		{"unsigned", unsigned("carl")[len("Bearer "):], "carl"},
		{"other claim order", enc([]byte(`{"alg":"HS256"}`)) + "." + enc([]byte(`{"exp":1,"sub":"dave"}`)) + ".sig", "dave"},
		{"trailing data after the claims", "h." + enc([]byte(`{"sub":"erin"} x`)) + ".s", "erin"},
		{"not three segments", "a.b", ""},
		{"claims not base64url", "a.!!!.c", ""},
		{"claims not JSON", "a." + enc([]byte("nope")) + ".c", ""},
		{"sub not a string", "a." + enc([]byte(`{"sub":5}`)) + ".c", ""},
		{"sub not a user id", "a." + enc([]byte(`{"sub":"a b"}`)) + ".c", ""},
		{"no sub", "a." + enc([]byte(`{"exp":1}`)) + ".c", ""},
	} {
		if got := claimedUser(tc.raw); got != tc.want {
			t.Errorf("%s: claimedUser = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestSoldOutBeforeTokenCounted: the decision-counting gate counts the
// sold-out answers given before the token like any other.
func TestSoldOutBeforeTokenCounted(t *testing.T) {
	t.Parallel()
	w := newWiredBench(t)
	sale := w.sale(t, 1)
	if _, err := w.gate.Purchase(context.Background(), commands.Purchase{SaleID: sale, UserID: "first"}); err != nil {
		t.Fatal(err)
	}
	before := w.decisions(t, "sold_out")
	for range 3 {
		req := httptest.NewRequest("POST", "/v1/sales/"+sale+"/purchase", nil)
		req.Header.Set("Authorization", "Bearer garbage")
		rec := httptest.NewRecorder()
		w.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusConflict {
			t.Fatalf("garbage token on a sold-out sale: %d %s", rec.Code, rec.Body)
		}
	}
	if got := w.decisions(t, "sold_out") - before; got != 3 {
		t.Errorf("sold_out decisions counted: %v, want 3", got)
	}
}
