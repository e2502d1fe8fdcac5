package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seckill/seckill/challenge"
	"github.com/seckill/seckill/internal/nginx"
)

// clientFrom is an HTTP client whose connections leave from the loopback
// address local (127.0.0.0/8 is all loopback on Linux), so one test can be
// a trusted proxy and an untrusted client at once.
func clientFrom(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
}

// edgeCall sends one request with an X-Forwarded-For ("" for none).
func edgeCall(t *testing.T, c *http.Client, method, url, xff, token string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{"quantity":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// The per-client-address limit through `seckill serve`: behind the trusted
// proxy (127.0.0.2) the client is the right-most address the proxy did not
// add; a client cannot pick its address with a header of its own, and a
// peer that is not a trusted proxy is limited as itself whatever it sends.
func TestClientLimitEndToEnd(t *testing.T) {
	s := startSystem(t, "SECKILL_CLIENT_RPS", "1", "SECKILL_CLIENT_BURST", "3", "SECKILL_TRUSTED_PROXIES", "127.0.0.2")
	proxy, direct := clientFrom("127.0.0.2"), clientFrom("127.0.0.1")
	at := s.base + "/v1/time"
	limited := func(what string, r response) {
		t.Helper()
		var b struct {
			Error struct {
				Code         string `json:"code"`
				RetryAfterMS int64  `json:"retry_after_ms"`
			} `json:"error"`
		}
		_ = json.Unmarshal([]byte(r.raw), &b)
		if r.status != http.StatusTooManyRequests || b.Error.Code != "rate_limited" || r.header.Get("Retry-After") != "1" ||
			b.Error.RetryAfterMS < 1 || b.Error.RetryAfterMS > 1000 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %s (Retry-After %q), want 429 rate_limited, Retry-After 1, retry_after_ms in (0, 1000]", what, r.status, r.raw, r.header.Get("Retry-After"))
		}
	}

	for i := range 3 {
		if r := edgeCall(t, proxy, "GET", at, "203.0.113.9", ""); r.status != http.StatusOK {
			t.Fatalf("request %d of the burst behind the proxy: %d %s", i+1, r.status, r.raw)
		}
	}
	limited("the 4th request", edgeCall(t, proxy, "GET", at, "203.0.113.9", ""))
	limited("a forged address left of the real one", edgeCall(t, proxy, "GET", at, "198.51.100.1, 203.0.113.9", ""))
	// A purchase is refused before anything else is looked at, the JWT included.
	limited("a purchase", edgeCall(t, proxy, "POST", s.base+"/v1/sales/x/purchase", "203.0.113.9", "not-a-jwt"))
	if r := edgeCall(t, proxy, "GET", at, "198.51.100.1", ""); r.status != http.StatusOK {
		t.Errorf("another client behind the same proxy: %d %s", r.status, r.raw)
	}

	// Not a trusted proxy: its X-Forwarded-For is not believed.
	for i := range 3 {
		if r := edgeCall(t, direct, "GET", at, fmt.Sprintf("192.0.2.%d", i), ""); r.status != http.StatusOK {
			t.Fatalf("direct request %d: %d %s", i+1, r.status, r.raw)
		}
	}
	limited("an untrusted peer naming a fresh address", edgeCall(t, direct, "GET", at, "192.0.2.99", ""))

	// Waiting out Retry-After is enough.
	time.Sleep(time.Second)
	if r := edgeCall(t, proxy, "GET", at, "203.0.113.9", ""); r.status != http.StatusOK {
		t.Errorf("after Retry-After: %d %s", r.status, r.raw)
	}
}

// apiRequests sums seckill_http_requests_total of one route from the
// /metrics of the admin listener at base.
func apiRequests(t *testing.T, base, route string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "seckill_http_requests_total{") && strings.Contains(line, `route="`+route+`"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += int(v)
		}
	}
	return n
}

// The sale status through the deployed nginx (deploy/nginx.conf) in front
// of `seckill serve`: viewers polling it reach the API about once a second
// in all, and a purchase shows within the cache's bound.
func TestSaleStatusThroughNginx(t *testing.T) {
	if _, err := nginx.Find(); err != nil {
		if testingCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	s := startSystem(t)
	p, err := nginx.Start(context.Background(), nginx.Config{
		Upstreams: []string{strings.TrimPrefix(s.base, "http://")}, Dir: t.TempDir(), AccessLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	sale := s.createSale(5, "")
	const route = "/v1/sales/{id}"
	before := apiRequests(t, s.adminBase, route)

	var polls, notModified atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for v := range 30 {
		wg.Go(func() {
			etag := ""
			for time.Now().Before(stop) {
				req, _ := http.NewRequest("GET", p.URL+"/v1/sales/"+sale, nil)
				if etag != "" && v%2 == 0 { // half the viewers revalidate, as the page does
					req.Header.Set("If-None-Match", etag)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					etag = resp.Header.Get("ETag")
				case http.StatusNotModified:
					notModified.Add(1)
				default:
					t.Errorf("status through nginx: %d", resp.StatusCode)
				}
				polls.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	reached := apiRequests(t, s.adminBase, route) - before
	t.Logf("%d polls through nginx (%d answered 304 by nginx), %d reached the API", polls.Load(), notModified.Load(), reached)
	if polls.Load() < 600 || reached < 1 || reached > 8 {
		t.Errorf("%d polls through nginx, %d reached the API: want ≥ 600 polls and 1-8 at the API (one per second of max-age, plus refreshes)", polls.Load(), reached)
	}
	if notModified.Load() == 0 {
		t.Error("nginx never answered If-None-Match with 304")
	}

	// A purchase shows through the cache within max-age + stale-while-
	// revalidate (2 s) plus the gate's 0.5 s.
	if r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token("alice"), `{"quantity":1}`); r.status != http.StatusAccepted {
		t.Fatalf("purchase: %d %s", r.status, r.raw)
	}
	bought := time.Now()
	for {
		r := edgeCall(t, http.DefaultClient, "GET", p.URL+"/v1/sales/"+sale, "", "")
		if r.body["remaining"] == float64(4) {
			t.Logf("the purchase showed through the cache after %v", time.Since(bought).Round(time.Millisecond))
			break
		}
		if time.Since(bought) > 3500*time.Millisecond {
			t.Fatalf("3.5 s after a purchase the cached status still says %v", r.body["remaining"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testingCI reports whether this is CI, where a missing tool fails a test
// instead of skipping it (.ci/run installs them all).
func testingCI() bool { return os.Getenv("CI") == "true" }

// The per-sale challenge through `seckill serve` on two API nodes: no
// solution, no purchase token; a solution gets one, once, on any node; the
// work done before the start is not lost to a not_started.
func TestChallengeEndToEnd(t *testing.T) {
	s := startSystem(t)
	second := s.startAPINode()
	startsAt := time.Now().Add(2 * time.Second).UTC()
	r := s.do("POST", "/v1/sales", s.admin, fmt.Sprintf(
		`{"name":"Phone","stock":5,"price_cents":100,"starts_at":%q,"ends_at":%q,"challenge_bits":12}`,
		startsAt.Format(time.RFC3339Nano), startsAt.Add(time.Hour).Format(time.RFC3339Nano)))
	if r.status != http.StatusCreated || r.body["challenge_bits"] != float64(12) || r.body["require_token"] != true {
		t.Fatalf("create a sale with challenge_bits 12: %d %s, want 201 with challenge_bits 12 and require_token", r.status, r.raw)
	}
	sale := r.str("id")
	solve := func(base, user string) string {
		t.Helper()
		r := s.doAt(base, "GET", "/v1/sales/"+sale+"/challenge", s.token(user), "")
		if r.status != http.StatusOK || r.body["bits"] != float64(12) || r.str("header") != challenge.Header {
			t.Fatalf("challenge for %s: %d %s", user, r.status, r.raw)
		}
		sol, err := challenge.Solve(context.Background(), r.str("challenge"), 12)
		if err != nil {
			t.Fatal(err)
		}
		return sol
	}
	token := func(base, user, solution string) response {
		t.Helper()
		return s.doAt(base, "GET", "/v1/sales/"+sale+"/token", s.token(user), "", challenge.Header, solution)
	}
	refused := func(what string, r response, code string) {
		t.Helper()
		if r.status != http.StatusForbidden || r.errCode() != code {
			t.Errorf("%s: %d %s, want 403 %s", what, r.status, r.raw, code)
		}
	}

	// Solved during the countdown; asked for too early, it is not spent.
	alice := solve(s.base, "alice")
	if r := token(s.base, "alice", alice); r.status != http.StatusConflict || r.errCode() != "not_started" {
		t.Fatalf("token before the start: %d %s, want 409 not_started", r.status, r.raw)
	}
	time.Sleep(time.Until(startsAt) + 100*time.Millisecond)

	refused("no solution", token(s.base, "alice", ""), "challenge_required")
	refused("alice's solution for bob", token(s.base, "bob", alice), "challenge_failed")
	refused("a counter that was not worked for", token(s.base, "alice", alice[:strings.LastIndexByte(alice, '.')]+".1"), "challenge_failed")
	// Buying needs the token, so the challenge guards the purchase.
	if r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token("alice"), `{"quantity":1}`); r.errCode() != "token_required" {
		t.Errorf("purchase without a token: %d %s, want 403 token_required", r.status, r.raw)
	}
	r = token(s.base, "alice", alice)
	if r.status != http.StatusOK || r.str("token") == "" {
		t.Fatalf("token with a solution: %d %s", r.status, r.raw)
	}
	if p := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token("alice"), `{"quantity":1}`, "X-Purchase-Token", r.str("token")); p.status != http.StatusAccepted {
		t.Errorf("purchase with the token: %d %s", p.status, p.raw)
	}
	// Single use, on this node and on the other one.
	refused("the same solution again", token(s.base, "alice", alice), "challenge_used")
	refused("the same solution on the other node", token(second, "alice", alice), "challenge_used")
	// Two nodes racing with one solution: one token.
	carl := solve(second, "carl")
	var wg sync.WaitGroup
	var granted atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			if r := token([]string{s.base, second}[i%2], "carl", carl); r.status == http.StatusOK {
				granted.Add(1)
			} else if r.errCode() != "challenge_used" {
				t.Errorf("a racing replay: %d %s", r.status, r.raw)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 1 {
		t.Errorf("8 racing requests with one solution got %d tokens, want 1", granted.Load())
	}

	plain := s.createSale(1, "")
	if r := s.do("GET", "/v1/sales/"+plain+"/challenge", s.token("alice"), ""); r.status != http.StatusNotFound || r.errCode() != "no_challenge" {
		t.Errorf("challenge of a sale without one: %d %s, want 404 no_challenge", r.status, r.raw)
	}
	if r := s.do("POST", "/v1/sales", s.admin, `{"name":"x","stock":1,"price_cents":1,"starts_at":"2030-01-01T00:00:00Z","ends_at":"2030-01-02T00:00:00Z","challenge_bits":40}`); r.status != http.StatusBadRequest || r.body["error"].(map[string]any)["field"] != "challenge_bits" {
		t.Errorf("challenge_bits 40: %d %s, want 400 on challenge_bits", r.status, r.raw)
	}
}
