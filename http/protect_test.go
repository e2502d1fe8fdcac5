package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/internal/testenv"
)

// The protections as clients see them: every refusal with its status, code
// and retry hint, and the admin calls.

var protT0 = time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)

// protectedAPI is newTestAPI on a gate of our own: a stopped clock, a token
// key, and whatever else gcfg says.
func protectedAPI(t *testing.T, rdb *redis.Client, gcfg commands.GateConfig) (*testAPI, *commands.ManualClock) {
	t.Helper()
	clock := commands.NewManualClock(protT0)
	gcfg.Clock = clock
	if gcfg.TokenKey == nil {
		gcfg.TokenKey = commands.DeriveTokenKey([]byte(testSecret))
	}
	if rdb == nil {
		rdb = testenv.Redis(t)
	}
	g, err := commands.NewGate(gcfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	api := newTestAPI(t, func(c *Config) { c.Gate = g })
	api.gate = g
	return api, clock
}

func bearer(t *testing.T, user string, admin bool) string {
	t.Helper()
	tok, err := NewToken([]byte(testSecret), user, admin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// createSaleJSON creates a sale through the API; extra is more JSON fields.
func (a *testAPI) createSaleJSON(t *testing.T, stock int, startIn time.Duration, extra string) map[string]any {
	t.Helper()
	body := fmt.Sprintf(`{"name":"Phone","stock":%d,"price_cents":100,"starts_at":%q,"ends_at":%q%s}`, stock,
		protT0.Add(startIn).Format(time.RFC3339Nano), protT0.Add(time.Hour).Format(time.RFC3339Nano), extra)
	w := a.call(t, "POST", "/v1/sales", body, "Authorization", bearer(t, "admin", true))
	if w.Code != http.StatusCreated {
		t.Fatalf("create sale %s: %d %s", extra, w.Code, w.Body)
	}
	var sale map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &sale); err != nil {
		t.Fatal(err)
	}
	return sale
}

// refusal is what a refused request must answer.
type refusal struct {
	status     int
	code       string
	retryAfter string // the header; "" for none
	retryMS    int64  // retry_after_ms; 0 for none
}

func checkRefusal(t *testing.T, what string, w *httptest.ResponseRecorder, want refusal) {
	t.Helper()
	var b struct {
		Error struct {
			Code         string `json:"code"`
			RetryAfterMS int64  `json:"retry_after_ms"`
		} `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &b)
	got := refusal{w.Code, b.Error.Code, w.Header().Get("Retry-After"), b.Error.RetryAfterMS}
	if got != want {
		t.Errorf("%s: got %+v (%s), want %+v", what, got, strings.TrimSpace(w.Body.String()), want)
	}
}

func TestCreateSaleWithProtections(t *testing.T) {
	t.Parallel()
	api, _ := protectedAPI(t, nil, commands.GateConfig{})
	staged := api.createSaleJSON(t, 20, 0, `,"release_step":5,"require_token":true`)
	for k, want := range map[string]any{"release_step": 5.0, "release_interval_ms": 100.0, "user_interval_ms": 1000.0, "require_token": true} {
		if staged[k] != want {
			t.Errorf("staged sale %s = %v, want %v (the defaults)", k, staged[k], want)
		}
	}
	w := api.call(t, "GET", "/v1/sales/"+staged["id"].(string), "")
	if !strings.Contains(w.Body.String(), `"release_step":5`) || !strings.Contains(w.Body.String(), `"require_token":true`) {
		t.Errorf("GET the sale does not show its protections: %s", w.Body)
	}
	off := api.createSaleJSON(t, 20, 0, `,"release_step":5,"user_interval_ms":0`)
	if _, ok := off["user_interval_ms"]; ok {
		t.Errorf("user_interval_ms 0 should turn the limit off, got %v", off["user_interval_ms"])
	}
	plain := api.createSaleJSON(t, 20, 0, "")
	for _, k := range []string{"user_interval_ms", "release_step", "release_interval_ms", "require_token"} {
		if _, ok := plain[k]; ok {
			t.Errorf("a sale without protections shows %s", k)
		}
	}
	for _, tc := range []struct{ extra, field string }{
		{`,"user_interval_ms":-1`, "user_interval_ms"},
		{`,"user_interval_ms":3600001`, "user_interval_ms"},
		{`,"release_interval_ms":100`, "release_interval_ms"},
		{`,"release_step":21`, "release_step"},
		{`,"release_step":1,"release_interval_ms":600000`, "release_step"},
	} {
		body := fmt.Sprintf(`{"name":"Phone","stock":20,"price_cents":100,"starts_at":%q,"ends_at":%q%s}`,
			protT0.Format(time.RFC3339), protT0.Add(time.Hour).Format(time.RFC3339), tc.extra)
		w := api.call(t, "POST", "/v1/sales", body, "Authorization", bearer(t, "admin", true))
		var b struct {
			Error struct{ Code, Field string } `json:"error"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &b)
		if w.Code != http.StatusBadRequest || b.Error.Code != "invalid_request" || b.Error.Field != tc.field {
			t.Errorf("%s: %d %s, want 400 invalid_request on %s", tc.extra, w.Code, w.Body, tc.field)
		}
	}
}

func TestProtectionRefusals(t *testing.T) {
	t.Parallel()
	api, clock := protectedAPI(t, nil, commands.GateConfig{})
	alice, bob, carl := bearer(t, "alice", false), bearer(t, "bob", false), bearer(t, "carl", false)
	buy := func(sale, auth string, hdr ...string) *httptest.ResponseRecorder {
		return api.call(t, "POST", "/v1/sales/"+sale+"/purchase", `{"quantity":1}`, append([]string{"Authorization", auth}, hdr...)...)
	}

	// Per-user rate limit: 429 with the rest of the interval.
	limited := api.createSaleJSON(t, 10, 0, `,"user_interval_ms":10000,"per_user_limit":5`)["id"].(string)
	first := buy(limited, alice)
	if first.Code != http.StatusAccepted {
		t.Fatalf("first purchase: %d %s", first.Code, first.Body)
	}
	checkRefusal(t, "a second attempt at once", buy(limited, alice, "Idempotency-Key", "k2"),
		refusal{http.StatusTooManyRequests, "rate_limited", "10", 10000})
	clock.Advance(2500 * time.Millisecond)
	checkRefusal(t, "a second attempt 2.5s later", buy(limited, alice, "Idempotency-Key", "k3"),
		refusal{http.StatusTooManyRequests, "rate_limited", "8", 7500})
	if w := buy(limited, alice); w.Code != http.StatusOK || w.Header().Get("Idempotent-Replayed") != "true" ||
		w.Header().Get("Location") != first.Header().Get("Location") {
		t.Errorf("a retry of the order within the interval: %d %s, want 200 with the same order", w.Code, w.Body)
	}

	// Staged release: 1 unit per 100 ms; 30 ms in, the next is 70 ms away.
	clock.Set(protT0.Add(30 * time.Millisecond))
	staged := api.createSaleJSON(t, 10, 0, `,"release_step":1,"user_interval_ms":0`)["id"].(string)
	if w := buy(staged, bob); w.Code != http.StatusAccepted {
		t.Fatalf("first unit: %d %s", w.Code, w.Body)
	}
	checkRefusal(t, "before the next slice", buy(staged, carl), refusal{http.StatusConflict, "not_yet_released", "1", 70})

	// Not started: when it starts.
	later := api.createSaleJSON(t, 10, 90*time.Second, `,"require_token":true`)["id"].(string)
	checkRefusal(t, "purchase before the start", buy(later, alice), refusal{http.StatusConflict, "not_started", "90", 89970})
	checkRefusal(t, "token before the start", api.call(t, "GET", "/v1/sales/"+later+"/token", "", "Authorization", alice),
		refusal{http.StatusConflict, "not_started", "90", 89970})

	// Purchase token.
	clock.Set(protT0.Add(90 * time.Second))
	checkRefusal(t, "no token", buy(later, alice), refusal{http.StatusForbidden, "token_required", "", 0})
	w := api.call(t, "GET", "/v1/sales/"+later+"/token", "", "Authorization", alice)
	var tok commands.PurchaseToken
	if err := json.Unmarshal(w.Body.Bytes(), &tok); w.Code != http.StatusOK || err != nil || tok.Header != "X-Purchase-Token" ||
		!tok.ExpiresAt.Equal(protT0.Add(90*time.Second+2*time.Minute)) {
		t.Fatalf("GET token: %d %s", w.Code, w.Body)
	}
	checkRefusal(t, "another user's token", buy(later, bob, "X-Purchase-Token", tok.Token), refusal{http.StatusForbidden, "token_required", "", 0})
	if w := buy(later, alice, "X-Purchase-Token", tok.Token); w.Code != http.StatusAccepted {
		t.Errorf("purchase with a token: %d %s", w.Code, w.Body)
	}
	if w := api.call(t, "GET", "/v1/sales/"+later+"/token", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("token without signing in: %d", w.Code)
	}
	if w := api.call(t, "GET", "/v1/sales/nosuch/token", "", "Authorization", alice); w.Code != http.StatusNotFound {
		t.Errorf("token of an unknown sale: %d", w.Code)
	}
}

func TestBlacklistAPI(t *testing.T) {
	t.Parallel()
	api, _ := protectedAPI(t, nil, commands.GateConfig{})
	admin, mallory := bearer(t, "admin", true), bearer(t, "mallory", false)
	sale := api.createSaleJSON(t, 10, 0, "")["id"].(string)
	call := func(method, path, body, auth string) *httptest.ResponseRecorder {
		return api.call(t, method, path, body, "Authorization", auth)
	}
	if w := call("POST", "/v1/admin/blacklist", `{"user_id":"mallory"}`, admin); w.Code != http.StatusOK ||
		strings.TrimSpace(w.Body.String()) != `{"user_id":"mallory","blocked":true}` {
		t.Errorf("block: %d %s", w.Code, w.Body)
	}
	if w := call("GET", "/v1/admin/blacklist", "", admin); w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"users":["mallory"]}` {
		t.Errorf("list: %d %s", w.Code, w.Body)
	}
	checkRefusal(t, "blocked purchase", call("POST", "/v1/sales/"+sale+"/purchase", "", mallory), refusal{http.StatusForbidden, "blocked", "", 0})
	checkRefusal(t, "blocked token", call("GET", "/v1/sales/"+sale+"/token", "", mallory), refusal{http.StatusForbidden, "blocked", "", 0})
	for _, tc := range []struct {
		name, method, path, body, auth string
		want                           refusal
	}{
		{"a user blocks", "POST", "/v1/admin/blacklist", `{"user_id":"alice"}`, mallory, refusal{http.StatusForbidden, "forbidden", "", 0}},
		{"a user lists", "GET", "/v1/admin/blacklist", "", mallory, refusal{http.StatusForbidden, "forbidden", "", 0}},
		{"a user unblocks", "DELETE", "/v1/admin/blacklist/mallory", "", mallory, refusal{http.StatusForbidden, "forbidden", "", 0}},
		{"bad user id", "POST", "/v1/admin/blacklist", `{"user_id":"a b"}`, admin, refusal{http.StatusBadRequest, "invalid_request", "", 0}},
		{"no user id", "POST", "/v1/admin/blacklist", `{}`, admin, refusal{http.StatusBadRequest, "invalid_request", "", 0}},
		{"unknown field", "POST", "/v1/admin/blacklist", `{"user":"x"}`, admin, refusal{http.StatusBadRequest, "malformed_json", "", 0}},
	} {
		checkRefusal(t, tc.name, call(tc.method, tc.path, tc.body, tc.auth), tc.want)
	}
	if w := call("DELETE", "/v1/admin/blacklist/mallory", "", admin); w.Code != http.StatusOK ||
		strings.TrimSpace(w.Body.String()) != `{"user_id":"mallory","blocked":false}` {
		t.Errorf("unblock: %d %s", w.Code, w.Body)
	}
	if w := call("POST", "/v1/sales/"+sale+"/purchase", "", mallory); w.Code != http.StatusAccepted {
		t.Errorf("purchase after unblock: %d %s", w.Code, w.Body)
	}
}

func TestAdmissionRefusal(t *testing.T) {
	t.Parallel()
	api, _ := protectedAPI(t, nil, commands.GateConfig{AdmissionRPS: 0.001, AdmissionBurst: 2})
	sale := api.createSaleJSON(t, 10, 0, "")["id"].(string)
	// Two tokens: loading the sale, then alice's purchase. Bob's is one too many.
	if w := api.call(t, "POST", "/v1/sales/"+sale+"/purchase", "", "Authorization", bearer(t, "alice", false)); w.Code != http.StatusAccepted {
		t.Fatalf("alice: %d %s", w.Code, w.Body)
	}
	checkRefusal(t, "over the node's admission rate", api.call(t, "POST", "/v1/sales/"+sale+"/purchase", "", "Authorization", bearer(t, "bob", false)),
		refusal{http.StatusTooManyRequests, "rate_limited", "1", 1000})
}

func TestRedisTimeoutIs503(t *testing.T) {
	t.Parallel()
	srv := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Options().Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	api, _ := protectedAPI(t, rdb, commands.GateConfig{RedisTimeout: 100 * time.Millisecond})
	sale := api.createSaleJSON(t, 10, 0, "")["id"].(string)
	if w := api.call(t, "GET", "/v1/sales/"+sale+"/token", "", "Authorization", bearer(t, "alice", false)); w.Code != http.StatusOK {
		t.Fatalf("warm up: %d", w.Code) // loads the sale into the node's memory
	}
	if err := srv.Do(context.Background(), "CLIENT", "PAUSE", 1500, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	checkRefusal(t, "Redis hangs", api.call(t, "POST", "/v1/sales/"+sale+"/purchase", "", "Authorization", bearer(t, "alice", false)),
		refusal{http.StatusServiceUnavailable, "unavailable", "1", 0})
}

// TestSoldOutBurstSkipsRedis: after the sell-out, a burst of purchases through
// the whole handler (auth, JSON, gate) runs no purchase script.
func TestSoldOutBurstSkipsRedis(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	api, _ := protectedAPI(t, rdb, commands.GateConfig{SoldOutTTL: time.Hour})
	sale := api.createSaleJSON(t, 1, 0, "")["id"].(string)
	if w := api.call(t, "POST", "/v1/sales/"+sale+"/purchase", `{"quantity":1}`, "Authorization", bearer(t, "alice", false)); w.Code != http.StatusAccepted {
		t.Fatalf("last unit: %d %s", w.Code, w.Body)
	}
	tokens := make([]string, 300)
	for i := range tokens {
		tokens[i] = bearer(t, "u"+strconv.Itoa(i), false)
	}
	before := evalshaCalls(t, rdb)
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := api.call(t, "POST", "/v1/sales/"+sale+"/purchase", `{"quantity":1}`, "Authorization", tokens[i])
			checkRefusal(t, "after the sell-out", w, refusal{http.StatusConflict, "sold_out", "", 0})
		}()
	}
	wg.Wait()
	if got := evalshaCalls(t, rdb) - before; got != 0 {
		t.Errorf("%d purchase scripts ran for the burst after the sell-out, want 0", got)
	}
}

// evalshaCalls is how many EVALSHA Redis has run (INFO commandstats).
func evalshaCalls(tb testing.TB, rdb *redis.Client) int64 {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:calls="); ok {
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			return n
		}
	}
	return 0
}
