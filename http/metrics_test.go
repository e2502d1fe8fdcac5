package http

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// TestHTTPMetrics checks that requests are counted by route pattern (not the
// raw path, which would make a series per sale), status class and error
// code, and that MetricsHandler (the admin listener's /metrics) serves them.
func TestHTTPMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	api := newTestAPI(t, func(c *Config) { c.Registry = reg })
	sale, err := api.gate.CreateSale(context.Background(), commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "Phone", Stock: 1, PriceCents: 100, StartsAt: time.Now().Add(-time.Second),
			EndsAt: time.Now().Add(time.Hour),
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	buy := func(user string) int {
		tok, err := NewToken([]byte(testSecret), user, false, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return api.call(t, "POST", "/v1/sales/"+sale.ID+"/purchase", `{"quantity":1}`, "Authorization", "Bearer "+tok).Code
	}
	if got := buy("alice"); got != http.StatusAccepted {
		t.Fatalf("alice: %d", got)
	}
	for _, u := range []string{"bob", "carol", "dave"} {
		if got := buy(u); got != http.StatusConflict {
			t.Fatalf("%s: %d, want 409", u, got)
		}
	}
	api.call(t, "GET", "/no/such/route", "")
	api.call(t, "POST", "/v1/sales/"+sale.ID+"/purchase", `{}`) // no token

	const route = "/v1/sales/{id}/purchase"
	for _, tc := range []struct {
		labels []string
		want   float64
	}{
		{[]string{route, "POST", "2xx", ""}, 1},
		{[]string{route, "POST", "4xx", "sold_out"}, 3},
		{[]string{route, "POST", "4xx", "unauthenticated"}, 1},
		{[]string{"unmatched", "GET", "4xx", "not_found"}, 1},
	} {
		if got := counterValue(t, reg, tc.labels); got != tc.want {
			t.Errorf("requests%v = %v, want %v", tc.labels, got, tc.want)
		}
	}

	if w := api.call(t, "GET", "/metrics", ""); w.Code != http.StatusNotFound {
		t.Errorf("GET /metrics on the API router: %d, want 404 (the admin listener serves them)", w.Code)
	}
	w := httptest.NewRecorder()
	MetricsHandler(reg).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(body, `seckill_http_request_duration_seconds_bucket{method="POST",route="/v1/sales/{id}/purchase"`) {
		t.Errorf("GET /metrics: %d\n%s", w.Code, body)
	}
	if strings.Contains(body, sale.ID) {
		t.Errorf("a sale id is in a label: the raw path leaked into the metrics")
	}
}

// counterValue is the request counter with labels (route, method, status,
// code) in reg, 0 if it has no such series.
func counterValue(t *testing.T, reg *prometheus.Registry, labels []string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "seckill_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["route"] == labels[0] && got["method"] == labels[1] && got["status"] == labels[2] && got["code"] == labels[3] {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// BenchmarkMetricsMiddleware is the metrics' cost per request on the hot
// path's shape (a 409 with a JSON error body on a patterned route), against
// the same router without them:
//
//	go test -run '^$' -bench MetricsMiddleware ./http/
func BenchmarkMetricsMiddleware(b *testing.B) {
	body := sentinelBody(domain.ErrSoldOut)
	route := func(withMetrics bool) http.Handler {
		r := chi.NewRouter()
		if withMetrics {
			m, err := newHTTPMetrics(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			r.Use(m.middleware)
		}
		r.Post("/v1/sales/{id}/purchase", func(w http.ResponseWriter, r *http.Request) { writeRaw(w, http.StatusConflict, body) })
		return r
	}
	for _, tc := range []struct {
		name string
		on   bool
	}{{"bare", false}, {"metrics", true}} {
		h := route(tc.on)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{h: http.Header{}}
				req := httptest.NewRequest("POST", "/v1/sales/abc/purchase", nil)
				for pb.Next() {
					w.code = 0
					h.ServeHTTP(w, req)
					if w.code != http.StatusConflict {
						b.Fatalf("status %d", w.code)
					}
				}
			})
		})
	}
}
