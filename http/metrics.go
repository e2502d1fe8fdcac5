package http

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics are the router's Prometheus metrics. Routes are labelled by
// their chi pattern ("/v1/sales/{id}/purchase"), never the raw path, so the
// label set is bounded by the routes; a request that matched none is
// "unmatched".
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge

	// series caches each route's children of the vectors above, so that a
	// request costs two map reads instead of building the route pattern (an
	// allocation) and hashing and validating four label values: on the
	// sold_out path that was ~5% of the answer (docs/performance.md).
	series sync.Map // routeKey → *routeSeries
}

// routeKey is a matched route as chi recorded it (its patterns, before
// RoutePattern joins them) and the method.
type routeKey struct {
	n      int
	p      [4]string
	method string
}

// routeSeries are one route's metrics.
type routeSeries struct {
	latency  prometheus.Observer
	route    string
	outcomes sync.Map // outcomeKey → prometheus.Counter
}

type outcomeKey struct {
	status string // class: "2xx", "4xx" ...
	code   string
}

// knownMethods bounds the method label: a client may send any token as a
// method, and each would be a series.
var knownMethods = map[string]string{
	"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE", "OPTIONS": "OPTIONS",
}

func methodLabel(m string) string {
	if l, ok := knownMethods[m]; ok {
		return l
	}
	return "other"
}

// seriesOf returns the metrics of the route r matched.
func (m *httpMetrics) seriesOf(r *http.Request) *routeSeries {
	key := routeKey{n: -1, method: methodLabel(r.Method)}
	rc := chi.RouteContext(r.Context())
	if rc != nil && len(rc.RoutePatterns) <= len(key.p) {
		key.n = copy(key.p[:], rc.RoutePatterns)
		if v, ok := m.series.Load(key); ok {
			return v.(*routeSeries)
		}
	}
	route := "unmatched"
	if rc != nil {
		if p := rc.RoutePattern(); p != "" {
			route = p
		}
	}
	rs := &routeSeries{latency: m.latency.WithLabelValues(route, key.method), route: route}
	if key.n < 0 {
		return rs // too deep to cache (no route of ours is)
	}
	v, _ := m.series.LoadOrStore(key, rs)
	return v.(*routeSeries)
}

func (m *httpMetrics) count(rs *routeSeries, method, status, code string) {
	k := outcomeKey{status, code}
	if c, ok := rs.outcomes.Load(k); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := m.requests.WithLabelValues(rs.route, method, status, code)
	c.Inc()
	rs.outcomes.LoadOrStore(k, c)
}

// httpBuckets run from a sold-out answered from memory (tens of µs) to the
// request timeout.
var httpBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seckill_http_requests_total",
			Help: "HTTP requests by route pattern, method, status class (2xx, 4xx ...) and error code (\"\" on success).",
		}, []string{"route", "method", "status", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "seckill_http_request_duration_seconds",
			Help:    "Time from the request reaching the router to the handler's return, by route pattern and method.",
			Buckets: httpBuckets,
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seckill_http_requests_in_flight",
			Help: "Requests being handled now.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("http metrics: %w", err)
		}
	}
	return m, nil
}

// middleware observes every request. It costs two label lookups and a
// histogram observation, so the sold-out path stays cheap.
func (m *httpMetrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		rw := &recordingWriter{ResponseWriter: w}
		defer func() {
			m.inFlight.Dec()
			status := rw.status
			if status == 0 {
				// Nothing written: net/http answers 200 with an empty body.
				status = http.StatusOK
			}
			rs := m.seriesOf(r)
			rs.latency.Observe(time.Since(start).Seconds())
			m.count(rs, methodLabel(r.Method), statusClass(status), rw.code)
		}()
		next.ServeHTTP(rw, r)
	})
}

// MetricsHandler serves the registry's metrics in the Prometheus text
// format. It belongs on the private admin listener, never on the API's:
// the metrics show every open sale's remaining stock and the system's
// internals to whoever asks.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		// A collector that fails (Redis down during a scrape) must not hide
		// the other metrics, which are what one needs to see then.
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: false,
	})
}

var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(status int) string {
	if i := status/100 - 1; i >= 0 && i < len(statusClasses) {
		return statusClasses[i]
	}
	return strconv.Itoa(status)
}

// recordingWriter notes the status and, for an error answer, its error code,
// read from the start of the JSON body every error has
// ({"error":{"code":"sold_out",...}}), so no handler has to report it.
type recordingWriter struct {
	http.ResponseWriter
	status int
	code   string
	wrote  bool // the body has begun: only its start can hold the code
}

func (w *recordingWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

var codePrefix = []byte(`{"error":{"code":"`)

// errorCodes are the codes this package answers with, to label requests
// without copying the code out of every body.
var errorCodes = func() map[string]string {
	m := map[string]string{}
	for _, c := range codes {
		m[c.code] = c.code
	}
	for _, c := range []string{"internal", "invalid_request", "malformed_json", "body_too_large", "unsupported_media_type",
		"not_found", "method_not_allowed", "unavailable", "log_unavailable"} {
		m[c] = c
	}
	return m
}()

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 400 && !w.wrote {
		if c, ok := bodyErrorCode(p); ok {
			w.code = c
		}
	}
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

// bodyErrorCode reads the code of an error body that starts with codePrefix.
func bodyErrorCode(p []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(p, codePrefix)
	if !ok {
		return "", false
	}
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || end > 64 {
		return "", false
	}
	// Known codes without an allocation (string(b) as a map key does not
	// copy).
	if c, ok := errorCodes[string(rest[:end])]; ok {
		return c, true
	}
	return string(rest[:end]), true
}

// Unwrap lets http.ResponseController reach the connection (Flush, deadlines)
// for the streaming export.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes through for handlers that assert http.Flusher.
func (w *recordingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}
