// Command logtools measures the log tools of `seckill` on a year-sized log
// (make bench-log): it starts the embedded broker (`seckill broker`, its own
// process), Redis and Postgres, writes N events straight into the broker
// with franz-go (a year of daily sales, not through HTTP), then runs each
// tool as its own process and records its wall time and peak RSS, and writes
// the table into BENCHMARKS.md between the bench-log markers.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/domain/foldgen"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/localsvc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench-log:", err)
		os.Exit(1)
	}
}

const topic = "seckill.events"

type config struct {
	events int
	days   int
	out    string
	dir    string
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench-log", flag.ContinueOnError)
	var cfg config
	fs.IntVar(&cfg.events, "events", 10_000_000, "events to write")
	fs.IntVar(&cfg.days, "days", 365, "days of the log: one sale a day")
	fs.StringVar(&cfg.out, "out", "BENCHMARKS.md", "file whose bench-log section is rewritten; empty: print only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "seckill-bench-log-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg.dir = dir
	bin := filepath.Join(dir, "seckill")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/seckill").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	env, cleanup, err := services(ctx, bin, dir)
	defer cleanup()
	if err != nil {
		return err
	}
	brokers := []string{env.broker}
	start := time.Now()
	lg, err := generate(ctx, brokers, cfg)
	if err != nil {
		return err
	}
	genTime := time.Since(start)
	fmt.Printf("wrote %d events (%d orders in %d sales) in %s\n", lg.Events, lg.Orders, cfg.days, genTime.Round(time.Millisecond))

	common := []string{"--data", dir, "--kafka-brokers", env.broker, "--redis-url", env.redis, "--database-url", env.db}
	mid := lg.Base.Add(time.Duration(cfg.days/2)*24*time.Hour + time.Minute)
	// Redis is emptied before the second restore, so both restores write
	// the whole gate; the first audit (a full fold) saves the snapshot the
	// later steps start from.
	flush := func() error {
		opt, err := redis.ParseURL(env.redis)
		if err != nil {
			return err
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		return rdb.FlushAll(ctx).Err()
	}
	steps := []struct {
		name, what string
		args       []string
		before     func() error
	}{
		{"events --order", "one order's events (its partition only)", []string{"events", "--order", lg.SomeOrder, "--quiet"}, nil},
		{"events --sale", "one sale's events (its partition, then its day)", []string{"events", "--sale", lg.SomeSale, "--quiet", "--out", os.DevNull}, nil},
		{"events --from/--to", "one second in the middle of the year", []string{"events", "--from", mid.Format(time.RFC3339), "--to", mid.Add(time.Second).Format(time.RFC3339), "--quiet"}, nil},
		{"events --out (export)", "the whole log as JSONL", []string{"events", "--out", os.DevNull, "--quiet"}, nil},
		{"gate restore --fresh", "the whole log folded, into an empty Redis (no snapshot)", []string{"gate", "restore", "--fresh"}, nil},
		{"audit --fresh", "the whole log folded (no snapshot) + invariants + the gate; saves a snapshot", []string{"audit", "--fresh", "--skip", "read-models", "--wait", "1s"}, nil},
		{"audit", "from the snapshot (nothing after it) + invariants + the gate", []string{"audit", "--skip", "read-models", "--wait", "1s"}, nil},
		{"gate restore", "from the snapshot, into an empty Redis", []string{"gate", "restore"}, flush},
		{"migrate", "(set-up for the rebuild)", []string{"migrate"}, nil},
		{"projections rebuild orders", "the orders read model from offset zero", []string{"projections", "rebuild", "orders"}, nil},
	}
	var rows []string
	for _, s := range steps {
		if s.before != nil {
			if err := s.before(); err != nil {
				return fmt.Errorf("before %s: %w", s.name, err)
			}
		}
		d, rss, out, err := measure(ctx, bin, append(s.args, common...))
		status := "ok"
		if err != nil {
			status = "failed: " + firstLine(err.Error()+" "+out)
		}
		fmt.Printf("%-28s %10s  %7.0f MB  %s\n", s.name, d.Round(time.Millisecond), rss, status)
		fmt.Print(indent(out))
		if s.name == "migrate" {
			continue
		}
		rows = append(rows, fmt.Sprintf("| `seckill %s` | %s | %.1f s | %.0f MB | %s |", s.name, s.what, d.Seconds(), rss, status))
	}
	// The newest snapshot's size: what a year of closed sales costs on disk.
	if snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.snap")); len(snaps) > 0 {
		slices.Sort(snaps)
		if fi, err := os.Stat(snaps[len(snaps)-1]); err == nil {
			lg.snapshotBytes = fi.Size()
		}
	}
	return writeSection(cfg, lg, genTime, rows)
}

type endpoints struct{ broker, redis, db string }

// services starts the broker as its own process, Redis and Postgres.
func services(ctx context.Context, bin, dir string) (endpoints, func(), error) {
	var stops []func()
	cleanup := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	var env endpoints
	env.broker = "127.0.0.1:" + strconv.Itoa(19000+os.Getpid()%1000)
	broker := exec.Command(bin, "broker", "--addr", env.broker, "--partitions", "16", "--data", filepath.Join(dir, "broker"))
	broker.Stdout, broker.Stderr = os.Stdout, os.Stderr
	if err := broker.Start(); err != nil {
		return env, cleanup, err
	}
	stops = append(stops, func() { _ = broker.Process.Signal(syscall.SIGTERM); _ = broker.Wait() })
	rds, err := localsvc.StartRedis(ctx, localsvc.RedisConfig{Dir: filepath.Join(dir, "redis")})
	if err != nil {
		return env, cleanup, err
	}
	stops = append(stops, func() { _ = rds.Stop() })
	pg, err := localsvc.StartPostgres(ctx, localsvc.PostgresConfig{Dir: filepath.Join(dir, "pg"), Fast: true})
	if err != nil {
		return env, cleanup, err
	}
	stops = append(stops, func() { _ = pg.Stop() })
	if err := pg.EnsureDatabase(ctx, "seckill"); err != nil {
		return env, cleanup, err
	}
	env.redis, env.db = rds.URL(), pg.DSN("seckill")
	// The broker creates its topic when it starts listening.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := eventstore.EndOffsets(ctx, []string{env.broker}, topic); err == nil {
			break
		} else if time.Now().After(deadline) {
			return env, cleanup, fmt.Errorf("broker: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return env, cleanup, nil
}

type logShape struct {
	foldgen.YearShape
	snapshotBytes int64
}

// generate writes a year of daily sales (foldgen.Year) straight into the
// broker, each record stamped when its event occurred.
func generate(ctx context.Context, brokers []string, cfg config) (logShape, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(eventstore.Partitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		return logShape{}, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	flush := func() error {
		err := cl.ProduceSync(ctx, recs...).FirstErr()
		recs = recs[:0]
		return err
	}
	shape, err := foldgen.Year(cfg.events, cfg.days, func(e domain.Event, at time.Time) error {
		v, err := domain.Encode(e, at)
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Key: []byte(e.AggregateID()), Value: v, Timestamp: at.Add(5 * time.Millisecond)})
		if len(recs) == 50_000 {
			return flush()
		}
		return nil
	})
	if err == nil && len(recs) > 0 {
		err = flush()
	}
	return logShape{YearShape: shape}, err
}

// measure runs one command and returns its wall time and peak RSS (MB).
func measure(ctx context.Context, bin string, args []string) (time.Duration, float64, string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	var rss float64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = float64(ru.Maxrss) / 1024 // KB on Linux
		}
	}
	return d, rss, out.String(), err
}

// indent returns the lines of a command's output that say what it did
// (folded, restored, audit, snapshot), indented; progress lines are left out.
func indent(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		for _, w := range []string{"folded", "restored", "audit of", "fold:", "snapshot", "all invariants", "violation", "warning", "rebuilt", "wrote"} {
			if strings.Contains(l, w) {
				b.WriteString("    " + strings.TrimSpace(l) + "\n")
				break
			}
		}
	}
	return b.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

const beginMark, endMark = "<!-- bench-log: begin -->", "<!-- bench-log: end -->"

// writeSection replaces the bench-log section of cfg.out (or appends it).
func writeSection(cfg config, lg logShape, gen time.Duration, rows []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## The log tools at a year's scale (`make bench-log`)\n\n", beginMark)
	fmt.Fprintf(&b, "Written by `make bench-log` (bench/logtools) on %s, %s/%s, %d CPUs shared with other work (the figures move with the machine's load).\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintf(&b, "The log: %d events (%d orders) of %d daily sales, written straight into the embedded broker (`seckill broker`, its own process, its log on disk) with franz-go in %.1f s (%.0f events/s). ",
		lg.Events, lg.Orders, cfg.days, gen.Seconds(), float64(lg.Events)/gen.Seconds())
	b.WriteString("Each tool runs as its own `seckill` process; time is wall time, RSS the process's peak resident memory. ")
	fmt.Fprintf(&b, "The fold snapshot the first audit saved (docs/snapshots.md) is %.0f MB on disk.\n\n", float64(lg.snapshotBytes)/1e6)
	b.WriteString("| command | what | time | peak RSS | result |\n|---|---|---:|---:|---|\n")
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	b.WriteString(endMark + "\n")
	fmt.Print(b.String())
	if cfg.out == "" {
		return nil
	}
	old, err := os.ReadFile(cfg.out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(old)
	if i, j := strings.Index(s, beginMark), strings.Index(s, endMark); i >= 0 && j > i {
		s = s[:i] + b.String() + s[j+len(endMark)+1:]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + b.String()
	}
	return os.WriteFile(cfg.out, []byte(s), 0o644)
}
