package http

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// metadataSpy is the real gate, noting the metadata each CreateSale got.
type metadataSpy struct {
	Gate
	mu   sync.Mutex
	seen []domain.Metadata
}

func (s *metadataSpy) CreateSale(ctx context.Context, cmd commands.CreateSale) (commands.SaleView, error) {
	s.mu.Lock()
	s.seen = append(s.seen, domain.MetadataFrom(ctx))
	s.mu.Unlock()
	return s.Gate.CreateSale(ctx, cmd)
}

// TestTracing: the request id is echoed (the client's, or a new one), the
// commands get the metadata (correlation = a valid traceparent's trace id,
// else the request id; causation = the request id), and the access log has
// one line per request, with 4xx sampled and probes left out.
func TestTracing(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	spy := &metadataSpy{}
	a := newTestAPI(t, func(c *Config) {
		spy.Gate = c.Gate
		c.Gate = spy
		c.AccessLog = AccessLog{Logger: slog.New(slog.NewJSONHandler(lockedWriter{&logMu, &logs}, nil)), RefusalSample: 3}
	})
	admin := bearer(t, "admin", true)
	body := func() string {
		now := time.Now().UTC()
		return `{"name":"Phone","stock":1,"price_cents":100,"starts_at":"` + now.Format(time.RFC3339) +
			`","ends_at":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}`
	}

	if w := a.call(t, "GET", "/healthz", ""); w.Header().Get("X-Request-Id") == "" {
		t.Error("/healthz: no X-Request-Id")
	}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	w := a.call(t, "POST", "/v1/sales", body(), "Authorization", admin, "X-Request-Id", "req-1",
		"traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	if w.Code != 201 || w.Header().Get("X-Request-Id") != "req-1" {
		t.Fatalf("create with a request id: %d %s, X-Request-Id %q", w.Code, w.Body, w.Header().Get("X-Request-Id"))
	}
	w = a.call(t, "POST", "/v1/sales", body(), "Authorization", admin, "traceparent", "00-"+strings.Repeat("0", 32)+"-00f067aa0ba902b7-01")
	gen := w.Header().Get("X-Request-Id")
	if w.Code != 201 || gen == "" {
		t.Fatalf("create: %d %s, X-Request-Id %q", w.Code, w.Body, gen)
	}
	want := []domain.Metadata{{CorrelationID: trace, CausationID: "req-1"}, {CorrelationID: gen, CausationID: gen}}
	if len(spy.seen) != 2 || spy.seen[0] != want[0] || spy.seen[1] != want[1] {
		t.Errorf("metadata the gate got: %+v, want %+v", spy.seen, want)
	}
	for range 6 {
		a.call(t, "GET", "/v1/orders/nope", "") // 401: no token
	}

	logMu.Lock()
	defer logMu.Unlock()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d access log lines, want 4 (two creates, 2 of 6 refusals sampled 1 in 3, no probe):\n%s", len(lines), logs.String())
	}
	first := lines[0]
	if first["msg"] != "request" || first["route"] != "/v1/sales" || first["status"] != float64(201) ||
		first["request_id"] != "req-1" || first["correlation_id"] != trace {
		t.Errorf("first line: %v", first)
	}
	if l := lines[2]; l["status"] != float64(401) || l["code"] == "" || l["sampled_1_in"] != float64(3) {
		t.Errorf("refusal line: %v", l)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestTraceID(t *testing.T) {
	const ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		h    string
		want bool
	}{
		{ok, true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", true},
		{"", false},
		{ok + "-x", false}, // version 00 has nothing after the flags
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", false},
	} {
		got, valid := traceID(tc.h)
		if valid != tc.want || valid && got != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("traceID(%q) = %q, %v; want valid %v", tc.h, got, valid, tc.want)
		}
	}
}
