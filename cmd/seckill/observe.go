package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/eventstore"
	shttp "github.com/seckill/seckill/http"
)

// openPostgres opens the read models' pool with tracer timing every query
// (metrics.PGTracer).
func openPostgres(ctx context.Context, url string, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, usageError{fmt.Sprintf("bad database URL: %v", err)}
	}
	if tracer != nil {
		cfg.ConnConfig.Tracer = tracer
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return pool, nil
}

// readyChecks are what /readyz pings on a node of sys's roles: what those
// roles cannot work without. API nodes decide in Redis, read Postgres and
// export the log; the relay moves Redis to Kafka; projectors move Kafka to
// Postgres; the sweeper works in Redis alone.
func readyChecks(sys systemFlags, rdb redis.UniversalClient, pool *pgxpool.Pool, brokers []string, topic string) []shttp.Check {
	var checks []shttp.Check
	if sys.has("api") || sys.has("relay") || sys.has("sweeper") {
		checks = append(checks, shttp.Check{Name: "redis", Ping: func(ctx context.Context) error { return pingRedis(ctx, rdb) }})
	}
	if sys.has("api") || sys.has("projector") {
		checks = append(checks, shttp.Check{Name: "postgres", Ping: pool.Ping})
	}
	if sys.has("api") || sys.has("relay") || sys.has("projector") {
		checks = append(checks, shttp.Check{Name: "kafka", Ping: func(ctx context.Context) error { return kafkaPing(ctx, brokers, topic) }})
	}
	return checks
}

// adminHandler is the private mux of --admin-addr: pprof, the metrics and
// the probes. pprof is here and never on the public router, because a
// profile shows the process's internals and a 30 s CPU profile is a cheap
// way to slow a node down.
func adminHandler(reg prometheus.Gatherer, checks []shttp.Check) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/metrics", shttp.MetricsHandler(reg))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.Handle("/readyz", shttp.ReadyHandler(checks))
	return mux
}

// startAdmin serves h on addr until the returned server is shut down (last,
// so a profile can watch the shutdown too). A failure to serve is logged.
func startAdmin(addr string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		// No WriteTimeout: a CPU profile or trace takes as long as asked.
		IdleTimeout: 2 * time.Minute,
	}
	log.Info("admin listener: pprof, metrics, probes", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener", "err", err)
		}
	}()
	return srv, nil
}

// kafkaPing checks that the brokers answer and the log's topic exists.
func kafkaPing(ctx context.Context, brokers []string, topic string) error {
	_, err := eventstore.EndOffsets(ctx, brokers, topic)
	return err
}
