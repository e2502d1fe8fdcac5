//go:build linux

package main

// Issue 14: no accepted order lost when the Redis machine dies. The gate's
// Redis runs with a replica; its primary is killed (kill -9) in a purchase
// burst and Sentinel (or the cluster itself) promotes the replica. The API
// and the relay follow the promotion (go-redis's failover and cluster
// clients), every order a client was told of must be in the log and the
// read model, nothing may be sold twice, and `seckill audit` must exit 0.

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/localsvc"
	"github.com/seckill/seckill/internal/testenv"
)

// TestFaultRedisSentinelFailover: a primary, a replica and 3 Sentinels
// (down after 500 ms); the API and the relay connect with a
// redis+sentinel:// URL and wait for one replica on every write. The
// primary is killed mid-burst; once the Sentinels promoted the replica, a
// new replica is attached to it (a replacement machine: with one replica
// and none left, writes that must reach a replica wait for it).
func TestFaultRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	aof := localsvc.RedisConfig{AppendOnly: true, AppendFsync: "everysec"}
	primary := testenv.RedisServer(t, aof)
	replica := testenv.RedisReplica(t, primary, aof)
	s := testenv.RedisSentinels(t, primary, 3)
	failoverBurst(t, s.URL(), "redis primary kill -9, Sentinel failover", func(ctx context.Context, _ string) failover {
		if err := primary.Kill(); err != nil {
			t.Fatal(err)
		}
		return failover{
			victim: primary.Addr(),
			promoted: func() error {
				got, err := s.WaitFailover(ctx, primary.Addr())
				if err == nil && got != replica.Addr() {
					err = fmt.Errorf("the Sentinels promoted %s, not the replica %s", got, replica.Addr())
				}
				return err
			},
			replace: func() { testenv.RedisReplica(t, replica, aof) },
		}
	})
}

// TestFaultRedisClusterFailover: the same on a 3-master Redis Cluster with
// a replica per master; the master that owns the sale's slot is killed and
// the cluster fails the slot over to its replica (node timeout 2 s).
func TestFaultRedisClusterFailover(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisClusterReplicas(t, 3, 1)
	failoverBurst(t, "redis+cluster://"+strings.Join(cl.Addrs(), ","), "redis cluster master kill -9, cluster failover",
		func(ctx context.Context, sale string) failover {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
			defer c.Close()
			m, err := c.MasterForKey(ctx, "seckill:{sale:"+sale+"}:sale")
			if err != nil {
				t.Fatal(err)
			}
			for i, n := range cl.Masters {
				if n.Addr() != m.Options().Addr {
					continue
				}
				if err := n.Kill(); err != nil {
					t.Fatal(err)
				}
				heir := cl.Replicas[i][0]
				return failover{
					victim:   n.Addr(),
					promoted: func() error { return waitRole(ctx, heir.Addr(), "master") },
					replace:  func() { cl.AddReplica(t, heir.Addr()) },
				}
			}
			t.Fatalf("the sale's master %s is none of %v", m.Options().Addr, cl.Addrs())
			return failover{}
		})
}

// failover is what a scenario's kill did: the server it killed, how to
// wait for its replica's promotion, and how to give the promoted replica a
// replica of its own (a replacement machine: with one replica and none
// left, writes that must reach a replica wait for it).
type failover struct {
	victim   string
	promoted func() error
	replace  func()
}

// failoverBurst runs the scenario on the gate's Redis at redisURL: an API
// node, a relay+sweeper and a projector; a sale of less stock than
// shoppers (a double sale would oversell it) whose reservations expire
// after 2 s, so the sweeper works across the promotion; shoppers at a
// steady rate; kill(sale) kills the server that holds the sale. Once its
// replica is promoted and has a replica of its own, the shoppers go on a
// while; when every reservation has expired, the judge runs.
func failoverBurst(t *testing.T, redisURL, name string, kill func(ctx context.Context, sale string) failover) {
	rate := pick(300.0, 1500.0)
	d := newDeployment(t, redisURL)
	api := d.serveArgs("api", "api", "--redis-min-replicas", "1")
	d.serveArgs("relay", "relay,sweeper", "--redis-min-replicas", "1")
	d.serve("projector", "projector")
	d.sys.base = api.base
	users := int(rate * pick(5.0, 10.0))
	stock := users * 3 / 4
	const payWithin = 2 * time.Second
	sale := d.sys.createSale(stock, fmt.Sprintf(`,"per_user_limit":1,"pay_within_s":%d`, int(payWithin.Seconds())))

	b := newShoppers(d, sale, []string{api.base}, "f", 16)
	b.rate = rate
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); b.buy(stop, 0, users) }()
	b.waitAccepted(int64(rate), time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	killedAt := b.accepted.Load()
	start := time.Now()
	f := kill(ctx, sale)
	if err := f.promoted(); err != nil {
		t.Fatal(err)
	}
	promoted := time.Since(start)
	atPromotion := b.accepted.Load()
	f.replace()
	replaced := time.Since(start)
	time.Sleep(pick(time.Second, 3*time.Second)) // shoppers buy from the promoted replica
	close(stop)
	<-done
	stopped := time.Now()
	t.Log(b.summary())
	b.allAnswered()
	// Mid-burst: shoppers held orders before the kill (waitAccepted) and
	// bought after the promotion. Whether any was told 503 depends on the
	// outage: go-redis retries a dead connection (3 times, backoff up to
	// 512 ms) within the gate's 2 s, so a short failover only slows them.
	if b.accepted.Load() == atPromotion {
		t.Error("no purchase was accepted after the promotion: the burst ended before it")
	}

	// Every reservation expires (the sweeper runs every 100 ms) and the
	// relay forwards the expiries.
	time.Sleep(time.Until(stopped.Add(payWithin + time.Second)))
	waitDrained(t, d.gate(), time.Minute)
	fold, _, err := eventstore.FoldLog(ctx, d.brokers(), eventstore.DefaultTopic)
	if err != nil {
		t.Fatal(err)
	}
	told := b.ledger()
	kept := map[string]string{}
	var lost []string
	for o, u := range told {
		if st, ok := fold.Orders[o]; ok && st.UserID == u {
			kept[o] = u
		} else {
			lost = append(lost, o)
		}
	}
	st := fold.Sales[sale]
	if st == nil || st.Remaining() < 0 || st.Outstanding()+st.PaidQty > st.Stock {
		t.Errorf("oversold: the log has %+v for a stock of %d; %d orders told", st, stock, len(told))
	}
	expired := 0
	for o := range kept {
		if fold.Orders[o].Status == domain.StatusExpired {
			expired++
		}
	}
	if expired != len(kept) {
		t.Errorf("%d of %d orders expired in the log %v after the burst; the sweeper should have expired all", expired, len(kept), payWithin+time.Second)
	}
	t.Logf("faults: %s: %s killed after %d orders; its replica promoted %v later (%d orders accepted meanwhile), given a replica of its own after %v; %d orders accepted after the promotion; %d accepted orders not in the log",
		name, f.victim, killedAt, promoted.Round(time.Millisecond), atPromotion-killedAt, replaced.Round(time.Millisecond), b.accepted.Load()-atPromotion, len(lost))
	if len(lost) > 0 {
		t.Errorf("%d orders answered 202/200 are lost with the primary, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	d.judge(name, kept)
	b.matchLog(fold)
	if recs, dup := logOrder(t, d.brokers()); recs == 0 {
		t.Error("empty log")
	} else {
		t.Logf("log: %d records, %d redelivered (the relay published again what the promoted replica had not seen trimmed)", recs, dup)
	}
}

// waitRole waits until the server at addr reports role (master or slave).
func waitRole(ctx context.Context, addr, role string) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "role:"+role+"\r\n") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never became %s: %w", addr, role, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestFaultRedisReplicaFrozen: the replica stops answering (SIGSTOP: a
// partition or a stall), so no write can reach it. Purchases must be
// answered 503, not 202: the gate cannot promise to keep them. Once the
// replica answers again the same shoppers buy, each getting the order its
// refused attempt may have written (200) or a new one (202). Then the
// replica dies (kill -9): 503 again, until a new replica is attached.
func TestFaultRedisReplicaFrozen(t *testing.T) {
	t.Parallel()
	primary := testenv.RedisServer(t, localsvc.RedisConfig{AppendOnly: true})
	replica := testenv.RedisReplica(t, primary)
	// A plain URL: the primary has a replica at start, so writes wait for one.
	d := newDeployment(t, primary.URL())
	api := d.serve("api", "api")
	d.serve("relay", "relay,sweeper")
	d.serve("projector", "projector")
	d.sys.base = api.base
	sale := d.sys.createSale(10_000, `,"per_user_limit":1`)
	b := newShoppers(d, sale, []string{api.base}, "z", 8)
	b.buy(nil, 0, 40)
	if b.statuses[http.StatusAccepted] != 40 {
		t.Fatalf("before the freeze: statuses %v; want 40×202", b.statuses)
	}

	client := newClient(4)
	refused := pick(20, 100)
	// refuse has shoppers [from, from+refused) try once each: every one
	// must be answered 503 and no order.
	refuse := func(what string, from int) time.Duration {
		var slowest time.Duration
		for i := from; i < from+refused; i++ {
			start := time.Now()
			a := call(client, "POST", api.base+"/v1/sales/"+sale+"/purchase", d.sys.token(b.user(i)), `{"quantity":1}`)
			slowest = max(slowest, time.Since(start))
			if a.status != http.StatusServiceUnavailable || a.order != "" {
				t.Errorf("purchase with the replica %s: %d %v; want 503 and no order", what, a.status, a.body)
			}
		}
		return slowest
	}

	if err := replica.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Thaw() })
	slowFrozen := refuse("frozen", 40)
	if err := replica.Thaw(); err != nil {
		t.Fatal(err)
	}
	b.buy(nil, 40, refused)

	if err := replica.Kill(); err != nil {
		t.Fatal(err)
	}
	slowKilled := refuse("killed", 40+refused)
	testenv.RedisReplica(t, primary)
	b.buy(nil, 40+refused, refused)

	t.Log(b.summary())
	b.allAnswered()
	fold, _ := d.judge("redis replica frozen, then killed", b.ledger())
	b.matchLog(fold)
	t.Logf("faults: redis replica frozen: %d purchases answered 503 (slowest %v); killed: %d answered 503 (slowest %v); once a replica answered again every shopper holds one order",
		refused, slowFrozen.Round(time.Millisecond), refused, slowKilled.Round(time.Millisecond))
}

// TestFaultReplicaAckCost measures what waiting for a replica costs: purchase
// throughput through one API node on a primary without replica, on one with
// a replica the gate does not wait for, and on one it waits for
// (--redis-min-replicas 1), side by side in the same run (compareThroughput:
// turns, median of 5 rounds of 3 s, 64 and 4 clients). A measurement for
// docs/durability.md and BENCHMARKS.md, run by make faults only.
func TestFaultReplicaAckCost(t *testing.T) {
	if !faultsLong() {
		t.Skipf("a measurement: make faults (%s=1) runs it", longEnv)
	}
	aof := localsvc.RedisConfig{AppendOnly: true, AppendFsync: "everysec"}
	alone := testenv.RedisServer(t, aof)
	setups := []*costSetup{newCostSetup(t, "no replica", alone.URL(), []string{alone.Addr()}, "--redis-min-replicas", "0")}
	for _, min := range []string{"0", "1"} {
		p := testenv.RedisServer(t, aof)
		r := testenv.RedisReplica(t, p, aof)
		setups = append(setups, newCostSetup(t, "replica, --redis-min-replicas "+min, p.URL(),
			[]string{p.Addr(), r.Addr()}, "--redis-min-replicas", min))
	}
	t.Logf("faults: purchase throughput by replica acknowledgement (AOF everysec everywhere; Redis CPU counts primary and replica), one API node each, median of %d rounds of %v, GOMAXPROCS %d:\n%s",
		costRounds, costRound, runtime.GOMAXPROCS(0), compareThroughput(t, setups))
}
