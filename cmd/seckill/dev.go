package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/seckill/seckill/eventstore"
	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/internal/localsvc"
)

func runDev(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "dev", "dev [--addr 127.0.0.1:8080] [--data .seckill] [--replicas 1]")
	var ep endpoints
	ep.bind(c, fs)
	var sys systemFlags
	sys.bind(c, fs, "127.0.0.1:8080")
	fs.BoolVar(&sys.devSignIn, "dev-sign-in", true, "serve POST /v1/dev/token, the sale page's password-less sign-in")
	replicas := fs.Int("replicas", 0, "Redis replicas to start, with a Sentinel that fails over to one of them when the primary dies; "+
		"the system then connects through the Sentinel and waits for a replica on every write (--redis-min-replicas)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *replicas < 0 {
		return usageError{"--replicas must be ≥ 0"}
	}
	data, err := filepath.Abs(ep.Data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	if st, err := readDevState(data); err == nil && st.PID != os.Getpid() && alive(st.PID) {
		return fmt.Errorf("seckill dev is already running on %s (pid %d, %s)", data, st.PID, st.HTTPAddr)
	}
	log := newLogger(c, false)
	what := "Redis"
	if *replicas > 0 {
		what = fmt.Sprintf("Redis (a primary, %d replica(s) and a Sentinel)", *replicas)
	}
	fmt.Fprintf(c.stdout, "starting %s, Postgres and the Kafka-protocol broker under %s ...\n", what, data)

	rds, err := startDevRedis(ctx, data, *replicas)
	if err != nil {
		return err
	}
	defer rds.stop()
	pg, err := localsvc.StartPostgres(ctx, localsvc.PostgresConfig{Dir: filepath.Join(data, "postgres")})
	if err != nil {
		return err
	}
	defer stopLogged(log, "postgres", pg.Stop)
	if err := pg.EnsureDatabase(ctx, "seckill"); err != nil {
		return err
	}
	broker, err := eventstore.StartBroker(ctx, eventstore.BrokerConfig{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(data, "kafka"), Topic: ep.Topic, Partitions: sys.partitions, Logger: log,
	})
	if err != nil {
		return err
	}
	defer broker.Close()

	secret := ep.JWTSecret
	if secret == "" {
		if secret, err = devSecret(data); err != nil {
			return fmt.Errorf("jwt secret: %w", err)
		}
	}
	ep.RedisURL, ep.DatabaseURL, ep.Brokers, ep.JWTSecret = rds.URL(), pg.DSN("seckill"), strings.Join(broker.Addrs(), ","), secret
	st := devState{RedisURL: ep.RedisURL, DatabaseURL: ep.DatabaseURL, Brokers: ep.Brokers, Topic: ep.Topic, HTTPAddr: sys.addr, PID: os.Getpid(), StartedAt: time.Now().UTC()}
	if err := writeDevState(data, st); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(data, "dev.json"))

	admin, err := shttp.NewToken([]byte(secret), "admin", true, 30*24*time.Hour)
	if err != nil {
		return err
	}
	sys.dev = true
	sys.onListen = func(addr string) {
		fmt.Fprintf(c.stdout, "\nseckill is running.\n  API:          http://%s\n  Sale page:    http://%s/sale/{id}  (index: /)\n  Redis:        %s\n  Postgres:     %s\n  Kafka:        %s (topic %s)\n  admin token:  %s\n\nOther commands find these through --data %s. Ctrl-C stops everything.\n",
			addr, addr, rds.describe(), ep.DatabaseURL, ep.Brokers, ep.Topic, admin, ep.Data)
	}
	return runSystem(ctx, ep, sys, log)
}

// alive reports whether a process with pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// stopLogged stops a server of `seckill dev` on the way out, saying so when
// it did not stop cleanly (its data may want a look before the next start).
func stopLogged(log *slog.Logger, name string, stop func() error) {
	if err := stop(); err != nil {
		log.Warn("stop "+name, "err", err)
	}
}
