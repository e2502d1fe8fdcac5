package metrics

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// PGTracer is a pgx tracer that times every query and batch by operation
// (the SQL's first keyword: select, insert, update, delete, begin, commit,
// with, ...), and counts failures. Set it as the pool's
// ConnConfig.Tracer. A batch (the projections send their writes as one) is
// timed as "batch" from send to close.
type PGTracer struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
}

// NewPGTracer registers the Postgres metrics on reg.
func NewPGTracer(reg prometheus.Registerer) (*PGTracer, error) {
	t := &PGTracer{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "postgres", Name: "query_duration_seconds",
			Help:    "Postgres queries by operation (first SQL keyword; \"batch\" for a pipelined batch).",
			Buckets: latencyBuckets,
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "postgres", Name: "query_errors_total",
			Help: "Postgres queries that failed, by operation.",
		}, []string{"op"}),
	}
	if err := register(reg, t.latency, t.errors); err != nil {
		return nil, fmt.Errorf("postgres metrics: %w", err)
	}
	return t, nil
}

type traceKey struct{}

type traceStart struct {
	op    string
	start time.Time
}

// TraceQueryStart notes when a query began.
func (t *PGTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{op: sqlOp(data.SQL), start: time.Now()})
}

// TraceQueryEnd observes its duration.
func (t *PGTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	t.end(ctx, data.Err)
}

// TraceBatchStart notes when a batch began.
func (t *PGTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{op: "batch", start: time.Now()})
}

// TraceBatchQuery is called for each query of a batch; the batch is timed whole.
func (t *PGTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd observes the batch's duration.
func (t *PGTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	t.end(ctx, data.Err)
}

func (t *PGTracer) end(ctx context.Context, err error) {
	s, ok := ctx.Value(traceKey{}).(traceStart)
	if !ok {
		return
	}
	t.latency.WithLabelValues(s.op).Observe(since(s.start))
	if err != nil {
		t.errors.WithLabelValues(s.op).Inc()
	}
}

// knownOps bounds the label.
var knownOps = map[string]bool{
	"select": true, "insert": true, "update": true, "delete": true, "with": true, "begin": true,
	"commit": true, "rollback": true, "copy": true, "create": true, "alter": true, "drop": true,
	"truncate": true, "lock": true, "set": true, "show": true, "savepoint": true, "release": true,
}

// sqlOp returns the lowercased first keyword of sql, skipping leading
// whitespace and comments, or "other".
func sqlOp(sql string) string {
	for {
		sql = strings.TrimLeft(sql, " \t\r\n(")
		if rest, ok := strings.CutPrefix(sql, "--"); ok {
			_, sql, _ = strings.Cut(rest, "\n")
			continue
		}
		if rest, ok := strings.CutPrefix(sql, "/*"); ok {
			_, sql, _ = strings.Cut(rest, "*/")
			continue
		}
		break
	}
	end := strings.IndexFunc(sql, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') })
	if end < 0 {
		end = len(sql)
	}
	op := strings.ToLower(sql[:end])
	if knownOps[op] {
		return op
	}
	return "other"
}
