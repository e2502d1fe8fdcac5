package http

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
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
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil {
				if p := rc.RoutePattern(); p != "" {
					route = p
				}
			}
			status := rw.status
			if status == 0 {
				// Nothing written: net/http answers 200 with an empty body.
				status = http.StatusOK
			}
			m.latency.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
			m.requests.WithLabelValues(route, r.Method, statusClass(status), rw.code).Inc()
		}()
		next.ServeHTTP(rw, r)
	})
}

// metricsHandler serves the registry's metrics in the Prometheus text format.
func metricsHandler(g prometheus.Gatherer) http.Handler {
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

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 400 && !w.wrote {
		if rest, ok := bytes.CutPrefix(p, codePrefix); ok {
			if end := bytes.IndexByte(rest, '"'); end > 0 && end <= 64 {
				w.code = string(rest[:end])
			}
		}
	}
	w.wrote = true
	return w.ResponseWriter.Write(p)
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
