package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/eventstore"
	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/metrics"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/outbox"
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
	protect    protectionFlags   // node-wide protections (protect.go)
	edge       edgeFlags         // per-client limit, trusted proxies, status caching (edge.go)
	proj       projectionFlags   // projections, the daily read model's pace and database (projections.go)
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
	s.protect.bind(c, fs)
	s.edge.bind(c, fs)
	s.proj.bind(c, fs)
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
	return errors.Join(s.protect.validate(), s.edge.validate(), s.proj.validate())
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

// runSystem runs the roles of sys until ctx is done, then shuts down in order:
// stop accepting requests and finish those in flight, then let the relay and
// the projections finish their batch.
func runSystem(ctx context.Context, ep endpoints, sys systemFlags, log *slog.Logger) error {
	if err := sys.validate(); err != nil {
		return err
	}
	// The process's one metrics registry: every part registers on it, and
	// the API's /metrics and the admin listener serve it.
	reg := metrics.NewRegistry()
	rdb, err := openRedis(ep.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	redisHook, err := metrics.NewRedisHook(reg)
	if err != nil {
		return err
	}
	rdb.AddHook(redisHook)
	if err := pingRedis(ctx, rdb); err != nil {
		return fmt.Errorf("redis %s: %w", redactURL(ep.RedisURL), err)
	}
	if sys.migrate {
		if err := migrations.Up(ctx, ep.DatabaseURL); err != nil {
			return err
		}
	}
	pgTracer, err := metrics.NewPGTracer(reg)
	if err != nil {
		return err
	}
	pool, err := openPostgres(ctx, ep.DatabaseURL, pgTracer)
	if err != nil {
		return err
	}
	defer pool.Close()
	brokers := ep.brokerList()
	if err := eventstore.EnsureTopic(ctx, brokers, ep.Topic, sys.partitions); err != nil {
		return err
	}
	gate, err := commands.NewGate(sys.protect.gateConfig(ep.JWTSecret), rdb)
	if err != nil {
		return err
	}
	if err := gate.Load(ctx); err != nil {
		return err
	}

	// Background work stops when bg is cancelled, after the HTTP server has
	// drained, so in-flight purchases still get their events forwarded.
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var bg errgroup.Group
	if sys.has("relay") {
		pub, err := eventstore.NewPublisher(brokers, log)
		if err != nil {
			return err
		}
		defer pub.Close()
		timedPub, err := metrics.NewPublisher(reg, pub)
		if err != nil {
			return err
		}
		relay, err := outbox.NewRelay(outbox.RelayConfig{OutboxesKey: gate.OutboxesKey(), Topic: ep.Topic, Logger: log}, rdb, timedPub)
		if err != nil {
			return err
		}
		outboxes, err := metrics.NewOutboxCollector(metrics.OutboxConfig{OutboxesKey: gate.OutboxesKey(), Relay: relay}, rdb)
		if err != nil {
			return err
		}
		if err := reg.Register(outboxes); err != nil {
			return err
		}
		bg.Go(func() error {
			err := relay.Run(bgCtx)
			// The API has drained by now: forward what its last requests
			// wrote, so a clean stop leaves no accepted order waiting in Redis.
			flushCtx, cancel := context.WithTimeout(context.Background(), sys.shutdown/2)
			defer cancel()
			if n, ferr := relay.RunOnce(flushCtx); ferr != nil {
				log.Warn("relay flush at shutdown", "err", ferr)
			} else if n > 0 {
				log.Info("relay flushed at shutdown", "events", n)
			}
			return err
		})
	}
	if sys.has("api") {
		// The node's memory of sold-out sales and of the blacklist.
		bg.Go(func() error { return gate.RunWatcher(bgCtx, commands.WatcherConfig{Logger: log}) })
	}
	if sys.has("sweeper") {
		bg.Go(func() error {
			return gate.RunSweeper(bgCtx, commands.SweeperConfig{Interval: sys.sweepEvery, Logger: log})
		})
	}
	// The read models (projections.go): orders, inventory, daily (maybe in a
	// database of its own); a projector runs their consumers.
	rm, err := openReadModels(ctx, sys.proj, ep, pool, pgTracer, sys.migrate)
	if err != nil {
		return err
	}
	defer rm.close()
	orders := rm.orders
	if sys.has("projector") {
		if err := rm.startConsumers(bgCtx, &bg, sys.proj, brokers, ep.Topic, sys.partitions, reg, log); err != nil {
			return err
		}
	}
	if err := rm.startMonitor(brokers, ep.Topic, reg, log); err != nil {
		return err
	}

	var srv *http.Server
	if sys.has("api") {
		auth, err := shttp.NewAuthenticator([]byte(ep.JWTSecret))
		if err != nil {
			return err
		}
		if sys.devSignIn && !sys.dev {
			log.Warn("dev sign-in is on: POST /v1/dev/token signs in any user id without a password")
		}
		// The admin export reads the log directly, in no consumer group.
		eventLog, err := eventstore.NewLog(eventstore.LogConfig{Brokers: brokers, Topic: ep.Topic})
		if err != nil {
			return err
		}
		// Every decision counted by reason; the remaining stock of open
		// sales read at scrape time.
		countedGate, err := metrics.NewGate(reg, gate)
		if err != nil {
			return err
		}
		stock, err := metrics.NewStockCollector(metrics.StockConfig{}, gate)
		if err != nil {
			return err
		}
		if err := reg.Register(stock); err != nil {
			return err
		}
		hcfg := shttp.Config{
			Gate: countedGate, Orders: orders, Auth: auth, Logger: log, Events: eventLog,
			Sales: orders, DevSignIn: sys.devSignIn, Registry: reg,
			Inventory: rm.inventory, Daily: rm.daily, Projections: rm.monitor,
			Ready: readyChecks(sys, rdb, pool, brokers, ep.Topic),
		}
		if err := sys.edge.apply(&hcfg, rdb, ep.JWTSecret); err != nil {
			return err
		}
		h, err := shttp.NewHandler(hcfg)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", sys.addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", sys.addr, err)
		}
		srv = shttp.NewServer(sys.addr, h)
		if sys.onListen != nil {
			sys.onListen(ln.Addr().String())
		}
		bg.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	var admin *http.Server
	if sys.adminAddr != "" {
		h := adminHandler(reg, readyChecks(sys, rdb, pool, brokers, ep.Topic))
		if admin, err = startAdmin(sys.adminAddr, h, log); err != nil {
			return err
		}
		// Closed last, so a profile can watch the shutdown too.
		defer admin.Close()
	}
	log.Info("seckill running", "roles", sys.role, "addr", sys.addr)
	<-ctx.Done()
	log.Info("shutting down", "timeout", sys.shutdown)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), sys.shutdown)
	defer cancel()
	if srv != nil {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Warn("http shutdown", "err", err)
		}
	}
	stopBG()
	done := make(chan error, 1)
	go func() { done <- bg.Wait() }()
	select {
	case err := <-done:
		return err
	case <-shutdownCtx.Done():
		return fmt.Errorf("shutdown took longer than %s", sys.shutdown)
	}
}
