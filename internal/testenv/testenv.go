// Package testenv is the shared test harness: it gives each test real Redis,
// Postgres and Kafka-protocol servers on loopback, fresh for that test, so
// that tests run in parallel and nothing is mocked that can run here.
//
//   - Redis starts a redis-server per test (it starts in milliseconds).
//   - Postgres creates a database per test on one server per test binary
//     (initdb takes seconds, CREATE DATABASE a tenth of one).
//   - Kafka starts an in-process kfake cluster per test.
//
// A package that uses Postgres needs
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// so that the shared server is stopped and its directory removed when the
// tests end. When a server binary is missing the helpers fail the test with
// the command that installs it; they never skip, because CI installs
// everything and a skipped test there would hide a broken one.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/seckill/seckill/internal/localsvc"
)

// PostgresURLEnv names the environment variable that points the tests at an
// existing Postgres server instead of starting one. Its value is a DSN with
// the right to create databases; each test gets a fresh database there.
const PostgresURLEnv = "SECKILL_TEST_POSTGRES_URL"

// Topic is the event log topic that Kafka seeds, the default of the
// eventstore (docs/CONTRACTS.md).
const Topic = "seckill.events"

// startTimeout bounds starting one server, initdb included.
const startTimeout = 2 * time.Minute

// Main runs the tests of a package, then stops the Postgres server that its
// tests shared. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	shared.mainCalled.Store(true)
	code := m.Run()
	if err := shared.close(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Redis returns a client of a fresh redis-server that only this test uses.
// The client and the server are closed when the test ends.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	srv := RedisServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	// Registered after the server's cleanup, so it runs first (cleanups run
	// last-in first-out): the client closes before its server goes away.
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// RedisServer starts a fresh redis-server for this test, in a directory of
// its own, and stops it when the test ends. Fault tests use it to Kill and
// Restart the server; cfg, if given, sets AppendOnly and the like (its Dir
// defaults to a temporary directory).
func RedisServer(t testing.TB, cfg ...localsvc.RedisConfig) *localsvc.Redis {
	t.Helper()
	var c localsvc.RedisConfig
	if len(cfg) > 0 {
		c = cfg[0]
	}
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	return started(t, func(ctx context.Context) (*localsvc.Redis, error) { return localsvc.StartRedis(ctx, c) })
}

// Postgres returns the DSN of a fresh, empty database that only this test
// uses, on the Postgres server shared by the test binary (or on the server
// that SECKILL_TEST_POSTGRES_URL names). The database is dropped when the
// test ends, with any sessions the test left open.
func Postgres(t testing.TB) string {
	t.Helper()
	if !shared.mainCalled.Load() {
		t.Fatalf("testenv.Postgres: the package has no TestMain calling testenv.Main, " +
			"so the shared server would outlive the tests; add\n\tfunc TestMain(m *testing.M) { testenv.Main(m) }")
	}
	srv, err := shared.get()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := srv.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(srv.admin, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dsn
}

// PostgresServer starts a Postgres server for this test alone, for fault
// tests that stop, kill or restart it, and stops it when the test ends. It
// runs in Fast mode unless cfg says otherwise (cfg's Dir defaults to a
// temporary directory). Its maintenance database is DSN("postgres");
// CreateDatabase makes more.
func PostgresServer(t testing.TB, cfg ...localsvc.PostgresConfig) *localsvc.Postgres {
	t.Helper()
	c := localsvc.PostgresConfig{Fast: true}
	if len(cfg) > 0 {
		c = cfg[0]
	}
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	return started(t, func(ctx context.Context) (*localsvc.Postgres, error) { return localsvc.StartPostgres(ctx, c) })
}

// Kafka starts a fresh in-process Kafka-protocol cluster (one kfake broker on
// loopback) for this test and returns its seed brokers. With partitions > 0
// the topic Topic exists with that many partitions, configured as the
// embedded broker of `seckill dev` makes it (kept forever); with 0 the code
// under test has to create it, as the eventstore does at start. The cluster
// is closed when the test ends.
func Kafka(t testing.TB, partitions int) []string {
	t.Helper()
	return KafkaCluster(t, partitions).ListenAddrs()
}

// KafkaCluster is Kafka for tests that need the cluster itself, to inject
// faults with its Control functions for instance. opts go to kfake after
// ours and so override them.
func KafkaCluster(t testing.TB, partitions int, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	all := []kfake.Opt{kfake.NumBrokers(1), kfake.ClusterID("seckill")}
	if partitions > 0 {
		// Topics that the code under test creates with the default count
		// get the same number.
		all = append(all, kfake.DefaultNumPartitions(partitions))
	}
	c, err := kfake.NewCluster(append(all, opts...)...)
	if err != nil {
		t.Fatalf("testenv: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	if partitions > 0 {
		err := c.CreateTopic(Topic, int32(partitions), map[string]string{"retention.ms": "-1", "retention.bytes": "-1"})
		if err != nil {
			t.Fatalf("testenv: create topic %s: %v", Topic, err)
		}
	}
	return c
}

// databaseName makes a database name from a test name: readable in psql, and
// unique because several test binaries may share one external server.
func databaseName(test string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 40 { // identifiers end at 63 bytes
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:]) // never fails (crypto/rand panics instead)
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

// shared is the Postgres server of this test binary. It is package state on
// purpose, the one piece of it: starting a server costs seconds (initdb), so
// all tests of the binary share one and get isolation from a database each.
// once guards the start, Main stops it.
var shared sharedPostgres

type sharedPostgres struct {
	mainCalled atomic.Bool // set by Main; Postgres insists on it

	once sync.Once
	srv  *server
	err  error
}

// server is where test databases are made: a server we started, or the one
// of SECKILL_TEST_POSTGRES_URL.
type server struct {
	admin string             // DSN with the right to create databases
	local *localsvc.Postgres // nil for an external server
	dir   string             // the local server's directory, removed at close
}

func (s *sharedPostgres) get() (*server, error) {
	s.once.Do(func() { s.srv, s.err = startShared() })
	return s.srv, s.err
}

func startShared() (*server, error) {
	if dsn := os.Getenv(PostgresURLEnv); dsn != "" {
		return &server{admin: dsn}, nil
	}
	dir, err := os.MkdirTemp("", "seckill-testenv-postgres-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	pg, err := localsvc.StartPostgres(ctx, localsvc.PostgresConfig{
		Dir:  dir,
		Fast: true,
		// Parallel tests each hold a pool; the default 100 runs out.
		ExtraArgs: []string{"-c", "max_connections=500"},
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &server{admin: pg.DSN("postgres"), local: pg, dir: dir}, nil
}

// close stops the shared server if one was started.
func (s *sharedPostgres) close() error {
	if s.srv == nil || s.srv.local == nil {
		return nil
	}
	err := s.srv.local.Stop()
	if rmErr := os.RemoveAll(s.srv.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// exec runs one statement on the admin connection. CREATE and DROP DATABASE
// cannot run in a transaction, so no pool or transaction is involved.
func (s *server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns dsn with its database replaced by db. It accepts both
// URLs and keyword/value strings, the two forms pgx reads.
func withDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("%s: %w", PostgresURLEnv, err)
		}
		u.Path = "/" + db
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value form a later keyword overrides an earlier one.
	return dsn + " dbname=" + db, nil
}

// started runs start under the start timeout and stops what it started
// when the test ends.
func started[S interface{ Stop() error }](t testing.TB, start func(context.Context) (S, error)) S {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := start(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return srv
}
