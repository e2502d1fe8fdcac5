package http

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
)

// The sale status is cacheable and revalidates by ETag; the ETag ignores
// server_time and follows everything else.
func TestSaleStatusCaching(t *testing.T) {
	t.Parallel()
	api, clock := protectedAPI(t, nil, commands.GateConfig{SaleCacheTTL: time.Nanosecond})
	sale := api.createSaleJSON(t, 2, -time.Second, "")["id"].(string)
	get := func(inm string) (int, http.Header, map[string]any) {
		t.Helper()
		w := api.call(t, "GET", "/v1/sales/"+sale, "", "If-None-Match", inm)
		var body map[string]any
		if w.Code == http.StatusOK {
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("status body: %v", err)
			}
		} else if w.Body.Len() != 0 {
			t.Errorf("%d answer has a body: %q", w.Code, w.Body)
		}
		return w.Code, w.Header(), body
	}

	status, h, first := get("")
	if status != http.StatusOK {
		t.Fatalf("GET status: %d", status)
	}
	if got, want := h.Get("Cache-Control"), "public, max-age=1, s-maxage=1, stale-while-revalidate=1, stale-if-error=30"; got != want {
		t.Errorf("Cache-Control = %q, want %q", got, want)
	}
	etag := h.Get("ETag")
	if !strings.HasPrefix(etag, `W/"`) || len(etag) < 10 {
		t.Fatalf("ETag = %q, want a weak tag", etag)
	}

	// A second later: a new server_time, the same tag, so a cache's copy
	// revalidates with a bodiless 304.
	clock.Advance(time.Second)
	status, h, second := get("")
	if status != http.StatusOK || h.Get("ETag") != etag {
		t.Fatalf("unchanged sale: %d ETag %q, want 200 %q", status, h.Get("ETag"), etag)
	}
	if first["server_time"] == second["server_time"] {
		t.Errorf("server_time did not move with the clock: %v", second["server_time"])
	}
	for _, inm := range []string{etag, strings.TrimPrefix(etag, "W/"), `"x", ` + etag, "*"} {
		if status, h, _ := get(inm); status != http.StatusNotModified || h.Get("ETag") != etag || h.Get("Cache-Control") == "" {
			t.Errorf("If-None-Match %s: %d ETag %q Cache-Control %q, want 304 with both", inm, status, h.Get("ETag"), h.Get("Cache-Control"))
		}
	}
	if status, _, _ := get(`W/"something-else"`); status != http.StatusOK {
		t.Errorf("a stale tag: %d, want 200", status)
	}

	// A purchase changes remaining, so the tag.
	if w := api.call(t, "POST", "/v1/sales/"+sale+"/purchase", `{"quantity":1}`, "Authorization", bearer(t, "alice", false)); w.Code != http.StatusAccepted {
		t.Fatalf("purchase: %d %s", w.Code, w.Body)
	}
	status, h, third := get(etag)
	if status != http.StatusOK || h.Get("ETag") == etag || third["remaining"] != float64(1) {
		t.Errorf("after a purchase: %d ETag %q remaining %v, want 200, a new tag, 1", status, h.Get("ETag"), third["remaining"])
	}

	// Refusals are never cached.
	w := api.call(t, "GET", "/v1/sales/no-such-sale", "")
	if w.Code != http.StatusNotFound || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("unknown sale: %d Cache-Control %q, want 404 no-store", w.Code, w.Header().Get("Cache-Control"))
	}
}

func TestStatusCacheControl(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		maxAge time.Duration
		want   string
	}{
		{-1, "no-cache"},
		{500 * time.Millisecond, "no-cache"},
		{time.Second, "public, max-age=1, s-maxage=1, stale-while-revalidate=1, stale-if-error=30"},
		{5 * time.Second, "public, max-age=5, s-maxage=5, stale-while-revalidate=5, stale-if-error=30"},
	} {
		if got := statusCacheControl(c.maxAge); got != c.want {
			t.Errorf("statusCacheControl(%v) = %q, want %q", c.maxAge, got, c.want)
		}
	}
}

// GET /v1/time is the page's clock: never cached, and the real time.
func TestServerTime(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t, nil)
	before := time.Now()
	w := api.call(t, "GET", "/v1/time", "")
	after := time.Now()
	var b struct {
		ServerTime time.Time `json:"server_time"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET /v1/time: %d %s (%v)", w.Code, w.Body, err)
	}
	if b.ServerTime.Before(before) || b.ServerTime.After(after) {
		t.Errorf("server_time %v not between %v and %v", b.ServerTime, before, after)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}
