package main

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestReadyChecksPerRole checks that readiness asks for what each role
// needs, no more: a projector does not fail over Redis, a relay not over
// Postgres.
func TestReadyChecksPerRole(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		role string
		want []string
	}{
		{"all", []string{"redis", "postgres", "kafka"}},
		{"api", []string{"redis", "postgres", "kafka"}},
		{"relay", []string{"redis", "kafka"}},
		{"projector", []string{"postgres", "kafka"}},
		{"sweeper", []string{"redis"}},
		{"relay,sweeper", []string{"redis", "kafka"}},
	} {
		var got []string
		for _, c := range readyChecks(systemFlags{role: tc.role}, nil, nil, nil, "t") {
			got = append(got, c.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("role %s: checks %v, want %v", tc.role, got, tc.want)
		}
	}
}

// TestAdminListener checks that pprof and the metrics are served on the
// admin listener, and pprof never on the public router.
func TestAdminListener(t *testing.T) {
	admin := freeAddr(t)
	s := startSystem(t, "SECKILL_ADMIN_ADDR", admin)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + admin + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("admin pprof index: %d", code)
	}
	if code, _ := get("http://" + admin + "/debug/pprof/profile?seconds=1"); code != http.StatusOK {
		t.Errorf("admin CPU profile: %d", code)
	}
	if code, body := get("http://" + admin + "/metrics"); code != http.StatusOK ||
		!strings.Contains(body, "go_goroutines") || !strings.Contains(body, "seckill_gate_decisions_total") {
		t.Errorf("admin metrics: %d", code)
	}
	code, body := get("http://" + admin + "/readyz")
	var ready map[string]string
	if err := json.Unmarshal([]byte(body), &ready); code != http.StatusOK || err != nil || ready["redis"] != "ok" || ready["kafka"] != "ok" || ready["postgres"] != "ok" {
		t.Errorf("admin readyz: %d %s", code, body)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/profile", "/debug/pprof/heap"} {
		if r := s.do("GET", p, "", ""); r.status != http.StatusNotFound {
			t.Errorf("public %s: %d, want 404", p, r.status)
		}
	}
	// Issue 15, item 7: the metrics (every open sale's stock) and the
	// readiness details (dependency addresses) are not public.
	if r := s.do("GET", "/metrics", "", ""); r.status != http.StatusNotFound {
		t.Errorf("public /metrics: %d, want 404", r.status)
	}
	if r := s.do("GET", "/readyz", "", ""); r.status != http.StatusOK || strings.TrimSpace(r.raw) != `{"status":"ready"}` {
		t.Errorf("public /readyz: %d %s, want only the status", r.status, r.raw)
	}
}
