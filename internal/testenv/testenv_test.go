package testenv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/seckill/seckill/internal/localsvc"
	"github.com/seckill/seckill/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestAll uses each of the three services the way a test of ours would.
func TestAll(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	rdb := testenv.Redis(t)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("redis GET k = %q, %v; want v", got, err)
	}

	conn, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var got int
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT v FROM t").Scan(&got); err != nil || got != 42 {
		t.Fatalf("postgres SELECT v = %d, %v; want 42", got, err)
	}

	brokers := testenv.Kafka(t, 4)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(testenv.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: testenv.Topic, Key: []byte("order-1"), Value: []byte("placed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fetchCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fetches := cl.PollFetches(fetchCtx)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "placed" {
		t.Fatalf("consumed %d records, want the one produced", len(recs))
	}
	req := kmsg.NewPtrMetadataRequest()
	topic := kmsg.NewMetadataRequestTopic()
	topic.Topic = kmsg.StringPtr(testenv.Topic)
	req.Topics = append(req.Topics, topic)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Topics[0].Partitions); n != 4 {
		t.Errorf("%s has %d partitions, want 4", testenv.Topic, n)
	}
}

// TestPostgresDatabasesAreIsolatedAndDropped runs two tests that make the same
// table at once, then checks that their databases are gone.
func TestPostgresDatabasesAreIsolatedAndDropped(t *testing.T) {
	t.Parallel()
	var dsns [2]string
	t.Run("group", func(t *testing.T) {
		for i := range dsns {
			t.Run("same table", func(t *testing.T) {
				t.Parallel()
				dsns[i] = testenv.Postgres(t)
				conn, err := pgx.Connect(t.Context(), dsns[i])
				if err != nil {
					t.Fatal(err)
				}
				// Left open on purpose: dropping the database must end it.
				if _, err := conn.Exec(t.Context(), "CREATE TABLE orders (id text PRIMARY KEY)"); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
	if dsns[0] == dsns[1] {
		t.Fatalf("two tests got the same database %s", dsns[0])
	}
	// Any database of the server will do to look at the catalog.
	conn, err := pgx.Connect(t.Context(), testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for _, dsn := range dsns {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(cfg.Database, "t_testpostgresdatabasesareisolatedanddro") {
			t.Errorf("database name %q does not tell the test", cfg.Database)
		}
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", cfg.Database).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test", cfg.Database)
		}
	}
}

// TestServersForFaultTests is the shape of a fault test: kill a server, bring
// it back on the same address, and find the data it kept.
func TestServersForFaultTests(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	rs := testenv.RedisServer(t, localsvc.RedisConfig{AppendOnly: true, AppendFsync: "always"})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "stock", 7, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "stock").Int(); err != nil || got != 7 {
		t.Errorf("redis stock after kill and restart = %d, %v; want 7", got, err)
	}

	ps := testenv.PostgresServer(t)
	if err := ps.CreateDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, ps.DSN("app"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := ps.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := exec("SELECT 1"); err == nil {
		t.Fatal("postgres answered after Kill")
	}
	if err := ps.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exec("INSERT INTO t SELECT v + 1 FROM t"); err != nil {
		t.Errorf("postgres after kill and restart: %v", err)
	}
}
