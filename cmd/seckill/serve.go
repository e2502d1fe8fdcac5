package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	shttp "github.com/seckill/seckill/http"
)

// Roles a process can take; "all" is every one of them.
var roles = []string{"api", "relay", "projector", "sweeper"}

// systemFlags configure the running system (serve and dev).
type systemFlags struct {
	addr       string
	role       string
	partitions int
	sweepEvery time.Duration
	shutdown   time.Duration
	dev        bool
	devSignIn  bool              // serve POST /v1/dev/token (password-less demo sign-in)
	onListen   func(addr string) // called once the API listens
	adminAddr  string            // pprof, metrics and probes; "" for none
	migrate    bool              // apply the migrations at start
	logRefusal int               // access log: one in this many 4xx answers
	protect    protectionFlags   // node-wide protections (protect.go)
	edge       edgeFlags         // per-client limit, trusted proxies, status caching (edge.go)
	proj       projectionFlags   // projections, the daily read model's pace and database (projections.go)
	replicas   replicaFlags      // how many Redis replicas a write waits for (redis.go)
}

func (s *systemFlags) bind(c cli, fs *flag.FlagSet, defAddr string) {
	fs.StringVar(&s.addr, "addr", envOr(c, "SECKILL_ADDR", defAddr), "HTTP listen address (env SECKILL_ADDR)")
	fs.StringVar(&s.role, "role", envOr(c, "SECKILL_ROLE", "all"), "comma-separated roles: api, relay, projector, sweeper, or all (env SECKILL_ROLE)")
	fs.IntVar(&s.partitions, "partitions", 16, "partitions of the event topic when it is created")
	fs.DurationVar(&s.sweepEvery, "sweep-interval", time.Second, "how often the sweeper looks for expired reservations and closed sales")
	fs.DurationVar(&s.shutdown, "shutdown-timeout", 15*time.Second, "how long a SIGTERM may take: in-flight requests finish, the relay and projections flush")
	fs.StringVar(&s.adminAddr, "admin-addr", c.getenv("SECKILL_ADMIN_ADDR"),
		"private listener for pprof (/debug/pprof/), /metrics, /healthz and /readyz, e.g. 127.0.0.1:6060; off when empty. Never expose it publicly (env SECKILL_ADMIN_ADDR)")
	fs.BoolVar(&s.migrate, "migrate", envBoolOr(c, "SECKILL_MIGRATE", true),
		"apply the database migrations at start (under an advisory lock); --migrate=false where a job owns the schema (`seckill migrate`) (env SECKILL_MIGRATE)")
	fs.IntVar(&s.logRefusal, "log-refusals", 100,
		"the access log (one line per request, serve only) keeps one in this many 4xx answers: a sale refuses nearly every request; 1 keeps all")
	s.protect.bind(c, fs)
	s.edge.bind(c, fs)
	s.proj.bind(c, fs)
	s.replicas.bind(c, fs)
}

func (s *systemFlags) has(role string) bool {
	for _, r := range strings.Split(s.role, ",") {
		if r = strings.TrimSpace(r); r == "all" || r == role {
			return true
		}
	}
	return false
}

func (s *systemFlags) validate() error {
	for _, r := range strings.Split(s.role, ",") {
		if r = strings.TrimSpace(r); r != "all" && !slices.Contains(roles, r) {
			return usageError{fmt.Sprintf("unknown role %q (want %s or all)", r, strings.Join(roles, ", "))}
		}
	}
	return errors.Join(s.protect.validate(), s.edge.validate(), s.proj.validate(), s.replicas.validate())
}

func runServe(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "serve", "serve [--role all|api|relay|projector|sweeper] [--addr :8080]")
	var ep endpoints
	ep.bind(c, fs)
	var sys systemFlags
	sys.bind(c, fs, ":8080")
	fs.BoolVar(&sys.devSignIn, "dev-sign-in", envBool(c, "SECKILL_DEV_SIGN_IN"),
		"serve POST /v1/dev/token, which signs in ANY user id without a password: for demos of the sale page only (env SECKILL_DEV_SIGN_IN)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := ep.need(true, true, true, sys.has("api")); err != nil {
		return err
	}
	if sys.has("api") {
		// Before anything is started: a node that verifies tokens with a
		// guessable secret lets anyone mint admin tokens.
		if err := shttp.CheckSecret([]byte(ep.JWTSecret)); err != nil {
			return usageError{err.Error()}
		}
	}
	// Every line says which part of a deployment wrote it: logs of many
	// processes end up in one place.
	return runSystem(ctx, ep, sys, newLogger(c, true).With("role", sys.role))
}

func newLogger(c cli, json bool) *slog.Logger {
	if json {
		return slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runSystem runs the roles of sys until ctx is done, or until one of them
// fails (node.run), then shuts down in order: stop accepting requests and
// finish those in flight, then let the relay and the projections finish
// their batch.
func runSystem(ctx context.Context, ep endpoints, sys systemFlags, log *slog.Logger) error {
	if err := sys.validate(); err != nil {
		return err
	}
	n, err := openNode(ctx, ep, sys, log)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.start(ctx); err != nil {
		return err
	}
	return n.run(ctx)
}
