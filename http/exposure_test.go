package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestPublicReadyRevealsNothing (issue 15, item 7): the API's /readyz tells a
// load balancer ready or not; which dependency failed, and its address, are
// for the admin listener's ReadyHandler only.
func TestPublicReadyRevealsNothing(t *testing.T) {
	t.Parallel()
	down := errors.New("dial tcp 10.1.2.3:6379: connect: connection refused")
	checks := []Check{
		{Name: "redis", Ping: func(context.Context) error { return down }},
		{Name: "postgres", Ping: func(context.Context) error { return nil }},
	}
	get := func(h http.Handler) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		return w.Code, w.Body.String()
	}
	code, body := get(PublicReadyHandler(checks))
	if code != http.StatusServiceUnavailable || strings.TrimSpace(body) != `{"status":"unavailable"}` {
		t.Errorf("public readyz with Redis down: %d %s", code, body)
	}
	code, body = get(ReadyHandler(checks))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "10.1.2.3:6379") || !strings.Contains(body, `"postgres":"ok"`) {
		t.Errorf("admin readyz with Redis down: %d %s, want the details", code, body)
	}
	if code, body := get(PublicReadyHandler(checks[1:])); code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ready"}` {
		t.Errorf("public readyz: %d %s", code, body)
	}
	api := newTestAPI(t, func(c *Config) { c.Ready = checks })
	if w := api.call(t, "GET", "/readyz", ""); strings.Contains(w.Body.String(), "10.1.2.3") || strings.Contains(w.Body.String(), "redis") {
		t.Errorf("the API router's /readyz reveals %s", w.Body)
	}
}

// TestCheckSecret (issue 15, item 7): a secret anyone could guess is refused,
// so a stack started with one cannot have its admin tokens minted by others.
func TestCheckSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, secret string
		ok           bool
	}{
		{"random hex", "6f1c0e9a4b7d2358c1e0f9a7b3d5c2e48a9f0b1c2d3e4f5a6b7c8d9e0f1a2b3c", true},
		{"32 varied bytes", testSecret, true},
		{"empty", "", false},
		{"short", "0123456789abcdef", false},
		{"the old compose fallback", "change-me-to-a-long-random-secret", false},
		{"one character repeated", strings.Repeat("a", 64), false},
		{"a short word repeated", strings.Repeat("abc", 20), false},
	}
	for _, tc := range tests {
		err := CheckSecret([]byte(tc.secret))
		if tc.ok != (err == nil) {
			t.Errorf("%s: CheckSecret = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if _, err := NewAuthenticator([]byte(tc.secret)); tc.ok != (err == nil) {
			t.Errorf("%s: NewAuthenticator = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// readonlyReply is a Redis error reply as go-redis types them.
type readonlyReply string

func (e readonlyReply) Error() string { return string(e) }
func (readonlyReply) RedisError()     {}

// TestDependencyFailuresAre503: Redis unreachable, restarting or failing
// over is an outage the client may retry (503 unavailable, Retry-After), not
// an internal error; a bug still is a 500.
func TestDependencyFailuresAre503(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	refused := rdb.Ping(context.Background()).Err()
	closed := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	_ = closed.Close()
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{"connection refused", fmt.Errorf("purchase in sale s: %w", refused), http.StatusServiceUnavailable},
		{"closed client", fmt.Errorf("pay: %w", closed.Ping(context.Background()).Err()), http.StatusServiceUnavailable},
		{"connection cut", fmt.Errorf("read order: %w", io.EOF), http.StatusServiceUnavailable},
		{"replica during a failover", fmt.Errorf("pay: %w", readonlyReply("READONLY You can't write against a read only replica.")), http.StatusServiceUnavailable},
		{"loading", readonlyReply("LOADING Redis is loading the dataset in memory"), http.StatusServiceUnavailable},
		{"a script bug", readonlyReply("ERR user_script:1: attempt to compare nil with number"), http.StatusInternalServerError},
		{"a plain bug", errors.New("unexpected gate answer"), http.StatusInternalServerError},
	}
	for _, tc := range tests {
		w := httptest.NewRecorder()
		writeError(w, httptest.NewRequest("POST", "/v1/sales/s/purchase", nil), slog.New(slog.DiscardHandler), tc.err)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), `"code":`) {
			t.Errorf("%s (%v): %d %s, want %d", tc.name, tc.err, w.Code, w.Body, tc.status)
		}
		if tc.status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", tc.name)
		}
	}
}
