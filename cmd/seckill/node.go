package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/eventstore"
	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/metrics"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/outbox"
)

// node is one seckill process (serve or dev): the services it holds open and
// the roles it runs. openNode connects and checks the services, start adds a
// role for each part the flags ask for, run supervises the roles, and Close
// releases everything openNode and start took.
type node struct {
	cfg     systemFlags
	ep      endpoints
	log     *slog.Logger
	brokers []string
	// reg is the process's one metrics registry: every part registers on
	// it, and the API's /metrics and the admin listener serve it.
	reg      *prometheus.Registry
	rdb      redis.UniversalClient
	pool     *pgxpool.Pool
	pgTracer *metrics.PGTracer
	gate     *commands.Gate
	rm       *readModels
	// minReplicas is how many Redis replicas a gate write and a relayed
	// outbox entry wait for (replicaFlags.resolve).
	minReplicas int

	roles   []role
	closers []func() // run last first by Close
}

// role is one long-running part of a node: the HTTP API, the relay, a
// projection's consumer, the sweeper, the gate's watcher.
type role struct {
	name string
	// run works until its ctx is done, then returns nil. An error, or a
	// return while ctx is not done, means the role failed.
	run func(ctx context.Context) error
	// drain, when set, is called at shutdown before any role's ctx is
	// cancelled: the API finishes the requests in flight, so that the other
	// roles still forward and apply what those requests wrote.
	drain func(ctx context.Context) error
}

// openNode connects to Redis, Postgres and Kafka, checks them, migrates the
// database (if asked), makes sure the log's topic exists and loads the gate.
// On error it has released whatever it opened.
func openNode(ctx context.Context, ep endpoints, cfg systemFlags, log *slog.Logger) (n *node, err error) {
	n = &node{cfg: cfg, ep: ep, log: log, brokers: ep.brokerList(), reg: metrics.NewRegistry()}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := n.openRedis(ctx); err != nil {
		return nil, err
	}
	if err := n.openPostgres(ctx); err != nil {
		return nil, err
	}
	if err := eventstore.EnsureTopic(ctx, n.brokers, ep.Topic, cfg.partitions); err != nil {
		return nil, err
	}
	gc := cfg.protect.gateConfig(ep.JWTSecret)
	// Answer a write only once n.minReplicas replicas hold it (openRedis).
	gc.MinReplicas, gc.ReplicaTimeout = n.minReplicas, cfg.replicas.timeout
	if n.gate, err = commands.NewGate(gc, n.rdb); err != nil {
		return nil, err
	}
	if err := n.gate.Load(ctx); err != nil {
		return nil, err
	}
	// The read models (projections.go): orders, inventory, daily (maybe in
	// a database of its own). Every node answers from them; a projector
	// also runs their consumers.
	if n.rm, err = openReadModels(ctx, cfg.proj, ep, n.pool, n.pgTracer, cfg.migrate); err != nil {
		return nil, err
	}
	n.closers = append(n.closers, n.rm.close)
	return n, nil
}

func (n *node) openRedis(ctx context.Context) error {
	rdb, err := openRedis(n.ep.RedisURL)
	if err != nil {
		return err
	}
	n.rdb = rdb
	n.closers = append(n.closers, func() { _ = rdb.Close() })
	hook, err := metrics.NewRedisHook(n.reg)
	if err != nil {
		return err
	}
	rdb.AddHook(hook)
	if err := pingRedis(ctx, rdb); err != nil {
		return fmt.Errorf("redis %s: %w", redactURL(n.ep.RedisURL), err)
	}
	want, have, err := n.cfg.replicas.resolve(ctx, rdb, n.ep.RedisURL)
	if err != nil {
		n.log.Warn("cannot count the Redis replicas; set --redis-min-replicas", "err", err, "min_replicas", want)
	}
	n.minReplicas = want
	n.log.Info("redis durability", "min_replicas", want, "replicas_now", have, "replica_timeout", n.cfg.replicas.timeout)
	if have >= 0 && want > have {
		n.log.Warn("fewer Redis replicas than writes wait for: purchases, payments and the relay stall (503) until they connect",
			"min_replicas", want, "replicas_now", have)
	}
	return nil
}

func (n *node) openPostgres(ctx context.Context) error {
	if n.cfg.migrate {
		if err := migrations.Up(ctx, n.ep.DatabaseURL); err != nil {
			return err
		}
	}
	var err error
	if n.pgTracer, err = metrics.NewPGTracer(n.reg); err != nil {
		return err
	}
	if n.pool, err = openPostgres(ctx, n.ep.DatabaseURL, n.pgTracer); err != nil {
		return err
	}
	n.closers = append(n.closers, n.pool.Close)
	return nil
}

// Close releases what the node holds, in the reverse order of taking it. Call
// it after run has returned.
func (n *node) Close() {
	for _, c := range slices.Backward(n.closers) {
		c()
	}
	n.closers = nil
}

// start makes the roles that the node's flags ask for, and the monitor and
// admin listener that every node has. Nothing runs until run.
func (n *node) start(ctx context.Context) error {
	for _, s := range []struct {
		role  string // the --role that asks for it; "" for every node
		start func(context.Context) error
	}{
		{"relay", n.startRelay},
		{"api", n.startWatcher},
		{"sweeper", n.startSweeper},
		{"projector", n.startProjector},
		{"", n.startMonitor},
		{"api", n.startAPI},
		{"", n.startAdmin},
	} {
		if s.role != "" && !n.cfg.has(s.role) {
			continue
		}
		if err := s.start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// startRelay adds the relay, which forwards the gate's outboxes to the log.
func (n *node) startRelay(context.Context) error {
	// A whole batch to the producer at once (eventstore.BatchPublisher):
	// the same records as watermill's publisher, in a fraction of the
	// produce requests, so the relay needs one lane.
	pub, err := eventstore.NewBatchPublisher(n.brokers)
	if err != nil {
		return err
	}
	// Closed by Close, after run: only once every Publish has returned.
	n.closers = append(n.closers, func() { _ = pub.Close() })
	timedPub, err := metrics.NewPublisher(n.reg, pub)
	if err != nil {
		return err
	}
	relay, err := outbox.NewRelay(outbox.RelayConfig{OutboxesKey: n.gate.OutboxesKey(), Topic: n.ep.Topic, Logger: n.log, Lanes: 1,
		MinReplicas: n.minReplicas, ReplicaTimeout: n.cfg.replicas.timeout}, n.rdb, timedPub)
	if err != nil {
		return err
	}
	outboxes, err := metrics.NewOutboxCollector(metrics.OutboxConfig{OutboxesKey: n.gate.OutboxesKey(), Relay: relay}, n.rdb)
	if err != nil {
		return err
	}
	if err := n.reg.Register(outboxes); err != nil {
		return err
	}
	n.roles = append(n.roles, role{name: "relay", run: func(ctx context.Context) error {
		err := relay.Run(ctx)
		// The API has drained by now: forward what its last requests
		// wrote, so a clean stop leaves no accepted order waiting in Redis.
		flushCtx, cancel := context.WithTimeout(context.Background(), n.cfg.shutdown/2)
		defer cancel()
		if k, ferr := relay.RunOnce(flushCtx); ferr != nil {
			n.log.Warn("relay flush at shutdown", "err", ferr)
		} else if k > 0 {
			n.log.Info("relay flushed at shutdown", "events", k)
		}
		return err
	}})
	return nil
}

// startWatcher adds the gate's watcher: the node's memory of sold-out sales
// and of the blacklist, which the API answers from.
func (n *node) startWatcher(context.Context) error {
	n.roles = append(n.roles, role{name: "watcher", run: func(ctx context.Context) error {
		return n.gate.RunWatcher(ctx, commands.WatcherConfig{Logger: n.log})
	}})
	return nil
}

// startSweeper adds the sweeper, which expires unpaid reservations and ends
// sales whose window closed.
func (n *node) startSweeper(context.Context) error {
	n.roles = append(n.roles, role{name: "sweeper", run: func(ctx context.Context) error {
		return n.gate.RunSweeper(ctx, commands.SweeperConfig{Interval: n.cfg.sweepEvery, Logger: n.log})
	}})
	return nil
}

// startProjector adds a role per projection: its consumer.
func (n *node) startProjector(ctx context.Context) error {
	if err := n.rm.newConsumers(ctx, n.cfg.proj, n.brokers, n.ep.Topic, n.cfg.partitions, n.reg, n.log); err != nil {
		return err
	}
	for _, c := range n.rm.consumers {
		n.roles = append(n.roles, role{name: "projector " + c.Name(), run: c.Run})
	}
	return nil
}

// startMonitor makes the monitor of the projections, which the API, the
// metrics and the probes read.
func (n *node) startMonitor(context.Context) error {
	return n.rm.startMonitor(n.brokers, n.ep.Topic, n.reg, n.log)
}

// startAPI listens on the API address and adds the HTTP server as a role.
func (n *node) startAPI(context.Context) error {
	h, err := n.apiHandler()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", n.cfg.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", n.cfg.addr, err)
	}
	srv := shttp.NewServer(n.cfg.addr, h)
	if n.cfg.onListen != nil {
		n.cfg.onListen(ln.Addr().String())
	}
	n.roles = append(n.roles, role{
		name: "api",
		run: func(context.Context) error {
			// Serve ends when drain shuts the server down.
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
		drain: srv.Shutdown,
	})
	return nil
}

// apiHandler wires the REST API to the gate, the read models and the log.
func (n *node) apiHandler() (http.Handler, error) {
	auth, err := shttp.NewAuthenticator([]byte(n.ep.JWTSecret))
	if err != nil {
		return nil, err
	}
	if n.cfg.devSignIn && !n.cfg.dev {
		n.log.Warn("dev sign-in is on: POST /v1/dev/token signs in any user id without a password")
	}
	// The admin export reads the log directly, in no consumer group.
	eventLog, err := eventstore.NewLog(eventstore.LogConfig{Brokers: n.brokers, Topic: n.ep.Topic})
	if err != nil {
		return nil, err
	}
	// Every decision counted by reason; the remaining stock of open sales
	// read at scrape time.
	countedGate, err := metrics.NewGate(n.reg, n.gate)
	if err != nil {
		return nil, err
	}
	stock, err := metrics.NewStockCollector(metrics.StockConfig{}, n.gate)
	if err != nil {
		return nil, err
	}
	if err := n.reg.Register(stock); err != nil {
		return nil, err
	}
	hcfg := shttp.Config{
		Gate: countedGate, Orders: n.rm.orders, Auth: auth, Logger: n.log, Events: eventLog,
		Sales: n.rm.orders, DevSignIn: n.cfg.devSignIn, Registry: n.reg,
		Inventory: n.rm.inventory, Daily: n.rm.daily, Returns: n.rm.daily, Projections: n.rm.monitor,
		Ready:     n.readyChecks(),
		AccessLog: shttp.AccessLog{Logger: n.log, RefusalSample: n.cfg.logRefusal},
	}
	if hcfg.DeadLetters, err = n.rm.deadLetters(); err != nil {
		return nil, err
	}
	draws, err := n.cfg.edge.apply(&hcfg, n.gate, n.rdb, n.ep.JWTSecret, n.log)
	if err != nil {
		return nil, err
	}
	// Every API node runs the drawer; a lease per sale keeps one at work.
	n.roles = append(n.roles, role{name: "drawer", run: draws.Run})
	return shttp.NewHandler(hcfg)
}

func (n *node) readyChecks() []shttp.Check {
	return readyChecks(n.cfg, n.rdb, n.pool, n.brokers, n.ep.Topic)
}

// startAdmin serves pprof, metrics and probes on the admin address, if one is
// set. It is not a role: it stays up through the shutdown (Close ends it), so
// a profile can watch the shutdown too.
func (n *node) startAdmin(context.Context) error {
	if n.cfg.adminAddr == "" {
		return nil
	}
	admin, err := startAdmin(n.cfg.adminAddr, adminHandler(n.reg, n.readyChecks()), n.log)
	if err != nil {
		return err
	}
	n.closers = append(n.closers, func() { _ = admin.Close() })
	return nil
}

// roleExit is how a role's run ended.
type roleExit struct {
	name string
	err  error
}

// run is the node's supervisor. It runs every role until ctx is done or a
// role stops on its own, which is a failure: a node that lost its relay or a
// projection would otherwise go on answering as if it were whole, and the
// loss would show only at shutdown. Either way it shuts the node down (see
// shutdown) and returns the failed role's error, if any, with any error of the
// shutdown.
func (n *node) run(ctx context.Context) error {
	// The roles' context is not ctx: at shutdown the API drains first, while
	// the relay and the projections still work.
	rolesCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	exits := make(chan roleExit, len(n.roles))
	for _, r := range n.roles {
		go func() { exits <- roleExit{r.name, r.run(rolesCtx)} }()
	}
	n.log.Info("seckill running", "roles", n.cfg.role, "addr", n.cfg.addr)
	var failed error
	running := len(n.roles)
	select {
	case <-ctx.Done():
	case e := <-exits:
		running--
		failed = fmt.Errorf("role %s stopped", e.name)
		if e.err != nil {
			failed = fmt.Errorf("role %s failed: %w", e.name, e.err)
		}
		n.log.Error("a role stopped; stopping the node", "role", e.name, "err", e.err)
	}
	return errors.Join(failed, n.shutdown(cancel, exits, running))
}

// shutdown stops the roles in order: first the API finishes the requests in
// flight (drain), then every role's context is cancelled and the relay and
// the projections finish their batch. It waits for the running roles at most
// the shutdown timeout.
func (n *node) shutdown(cancel context.CancelFunc, exits <-chan roleExit, running int) error {
	n.log.Info("shutting down", "timeout", n.cfg.shutdown)
	ctx, stop := context.WithTimeout(context.Background(), n.cfg.shutdown)
	defer stop()
	for _, r := range n.roles {
		if r.drain != nil {
			if err := r.drain(ctx); err != nil {
				n.log.Warn("drain", "role", r.name, "err", err)
			}
		}
	}
	cancel()
	var errs []error
	for ; running > 0; running-- {
		select {
		case e := <-exits:
			if e.err != nil {
				errs = append(errs, fmt.Errorf("role %s: %w", e.name, e.err))
			}
		case <-ctx.Done():
			return errors.Join(append(errs, fmt.Errorf("shutdown took longer than %s", n.cfg.shutdown))...)
		}
	}
	return errors.Join(errs...)
}
