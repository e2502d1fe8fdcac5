package http

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

func TestDevTokenDisabled(t *testing.T) {
	api := newTestAPI(t, nil) // DevSignIn is off unless asked for
	w := api.call(t, "POST", "/v1/dev/token", `{"user_id":"alice"}`)
	if w.Code != http.StatusNotFound || errCodeOf(t, w) != "not_found" {
		t.Errorf("POST /v1/dev/token with dev sign-in off: %d %s, want 404 not_found", w.Code, w.Body)
	}
}

func TestDevToken(t *testing.T) {
	api := newTestAPI(t, func(c *Config) { c.DevSignIn = true })
	sale, err := api.gate.CreateSale(context.Background(), commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "Phone", Stock: 3, PriceCents: 100, StartsAt: time.Now().Add(-time.Second),
			EndsAt: time.Now().Add(time.Hour),
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	token := func(user string) string {
		t.Helper()
		w := api.call(t, "POST", "/v1/dev/token", `{"user_id":"`+user+`"}`)
		var got devTokenResponse
		if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != http.StatusOK || err != nil || got.Token == "" || got.UserID != user {
			t.Fatalf("POST /v1/dev/token %s: %d %s", user, w.Code, w.Body)
		}
		if ttl := time.Until(got.ExpiresAt); ttl < devTokenTTL-time.Minute || ttl > devTokenTTL {
			t.Errorf("expires_at is %v away, want about %v", ttl, devTokenTTL)
		}
		return got.Token
	}

	alice := token("alice")
	id, err := api.auth.Verify(alice)
	if err != nil || id != (Identity{UserID: "alice"}) {
		t.Fatalf("Verify(dev token) = %+v, %v; want alice, not admin", id, err)
	}
	// The token works where a user token is needed: a real purchase.
	if w := api.call(t, "POST", "/v1/sales/"+sale.ID+"/purchase", `{"quantity":1}`, "Authorization", "Bearer "+alice); w.Code != http.StatusAccepted {
		t.Errorf("purchase with a dev token: %d %s, want 202", w.Code, w.Body)
	}
	// And never where an admin is: not even for a user called "admin".
	for _, user := range []string{"alice", "admin"} {
		tok := token(user)
		if id, _ := api.auth.Verify(tok); id.Admin {
			t.Errorf("dev token for %q is an admin token", user)
		}
		w := api.call(t, "POST", "/v1/sales/"+sale.ID+"/end", "", "Authorization", "Bearer "+tok)
		if w.Code != http.StatusForbidden || errCodeOf(t, w) != "forbidden" {
			t.Errorf("end sale with the dev token of %q: %d %s, want 403 forbidden", user, w.Code, w.Body)
		}
	}

	bad := []struct {
		name, body, code string
		status           int
	}{
		{"empty id", `{"user_id":""}`, "invalid_request", 400},
		{"spaces", `{"user_id":"alice smith"}`, "invalid_request", 400},
		{"too long", `{"user_id":"` + strings.Repeat("a", 65) + `"}`, "invalid_request", 400},
		{"punctuation", `{"user_id":"alice/../admin"}`, "invalid_request", 400},
		{"no id", `{}`, "invalid_request", 400},
		{"asks for admin", `{"user_id":"alice","role":"admin"}`, "malformed_json", 400},
		{"not json", `user_id=alice`, "malformed_json", 400},
		{"no body", ``, "malformed_json", 400},
	}
	for _, tc := range bad {
		w := api.call(t, "POST", "/v1/dev/token", tc.body)
		if w.Code != tc.status || errCodeOf(t, w) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, w.Code, w.Body, tc.status, tc.code)
		}
	}
	var field struct {
		Error struct{ Field string } `json:"error"`
	}
	_ = json.Unmarshal(api.call(t, "POST", "/v1/dev/token", `{"user_id":"a b"}`).Body.Bytes(), &field)
	if field.Error.Field != "user_id" {
		t.Errorf("invalid user id names field %q, want user_id", field.Error.Field)
	}
	if w := api.call(t, "GET", "/v1/dev/token", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/dev/token: %d, want 405", w.Code)
	}
}

func TestListSales(t *testing.T) {
	api := newTestAPI(t, nil)
	w := api.call(t, "GET", "/v1/sales", "")
	var got struct {
		Sales      []json.RawMessage `json:"sales"`
		ServerTime time.Time         `json:"server_time"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != http.StatusOK || err != nil || got.Sales == nil || got.ServerTime.IsZero() {
		t.Errorf("GET /v1/sales on an empty read model: %d %s; want 200, an empty list and server_time", w.Code, w.Body)
	}
	for _, q := range []string{"0", "101", "x"} {
		if w := api.call(t, "GET", "/v1/sales?limit="+q, ""); w.Code != http.StatusBadRequest || errCodeOf(t, w) != "invalid_request" {
			t.Errorf("GET /v1/sales?limit=%s: %d %s, want 400 invalid_request", q, w.Code, w.Body)
		}
	}
	// Without a lister the route does not exist.
	api = newTestAPI(t, func(c *Config) { c.Sales = nil })
	if w := api.call(t, "GET", "/v1/sales", ""); w.Code != http.StatusMethodNotAllowed && w.Code != http.StatusNotFound {
		t.Errorf("GET /v1/sales without a lister: %d, want 404 or 405", w.Code)
	}
}
