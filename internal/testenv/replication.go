package testenv

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/internal/localsvc"
)

// SentinelMaster is the name the Sentinels of RedisSentinels monitor the
// primary under: the path of their redis+sentinel:// URL.
const SentinelMaster = "seckill"

// Sentinel timings for tests: a primary that does not answer for
// SentinelDownAfter is down, and a failover is attempted again after twice
// SentinelFailoverTimeout. Production runs Redis's defaults (30 s, 3 min).
const (
	SentinelDownAfter       = 500 * time.Millisecond
	SentinelFailoverTimeout = 3 * time.Second
)

// RedisReplica starts a redis-server replicating primary (REPLICAOF) for
// this test and returns once its link is up and it holds the primary's
// data. cfg, if given, sets persistence and the like (its ReplicaOf is
// primary's address).
func RedisReplica(t testing.TB, primary *localsvc.Redis, cfg ...localsvc.RedisConfig) *localsvc.Redis {
	t.Helper()
	var c localsvc.RedisConfig
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.ReplicaOf = primary.Addr()
	r := RedisServer(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := WaitReplicaLinked(ctx, r.Addr()); err != nil {
		t.Fatalf("testenv: replica of %s: %v", primary.Addr(), err)
	}
	return r
}

// WaitReplicaLinked waits until the replica at addr has its link to its
// primary up, the initial sync done.
func WaitReplicaLinked(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	var last string
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") &&
			strings.Contains(info, "master_sync_in_progress:0") {
			return nil
		}
		last = info
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %s not linked: %w; last INFO replication:\n%s", addr, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Sentinels are Redis Sentinels watching one primary and its replicas.
type Sentinels struct {
	Master string            // the name they monitor it under
	Nodes  []*localsvc.Redis // the Sentinel processes (Kill, Restart …)
}

// Addrs are the Sentinels' addresses.
func (s *Sentinels) Addrs() []string {
	out := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL is the redis+sentinel:// URL of the primary behind the Sentinels,
// the form SECKILL_REDIS_URL takes.
func (s *Sentinels) URL() string {
	return "redis+sentinel://" + strings.Join(s.Addrs(), ",") + "/" + s.Master
}

// Primary asks the Sentinels which server is the primary now.
func (s *Sentinels) Primary(ctx context.Context) (string, error) {
	var lastErr error
	for _, addr := range s.Addrs() {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr})
		hp, err := c.GetMasterAddrByName(ctx, s.Master).Result()
		_ = c.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("no Sentinel names the primary of %s: %v", s.Master, lastErr)
}

// WaitFailover waits until a Sentinel names a primary other than old and
// that server says it is a primary, and returns its address.
func (s *Sentinels) WaitFailover(ctx context.Context, old string) (string, error) {
	for {
		addr, err := s.Primary(ctx)
		if err == nil && addr != old {
			c := redis.NewClient(&redis.Options{Addr: addr})
			info, ierr := c.Info(ctx, "replication").Result()
			_ = c.Close()
			if ierr == nil && strings.Contains(info, "role:master") {
				return addr, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no failover away from %s: %w (last: %s, %v)", old, ctx.Err(), addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// RedisSentinels starts n Sentinels for this test monitoring primary under
// SentinelMaster, quorum n/2+1, with the short test timings above, and
// returns once each knows the primary's replicas (start them first) and the
// other Sentinels, so that a failover can begin at once. They are stopped
// when the test ends.
func RedisSentinels(t testing.TB, primary *localsvc.Redis, n int) *Sentinels {
	t.Helper()
	if n < 1 {
		t.Fatalf("testenv.RedisSentinels: %d Sentinels", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	replicas, err := connectedReplicas(ctx, primary.Addr())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s := &Sentinels{Master: SentinelMaster}
	s.Nodes = startParallel(t, "sentinel", n, func() (*localsvc.Redis, error) {
		return localsvc.StartSentinel(ctx, localsvc.SentinelConfig{
			Dir: t.TempDir(), Master: SentinelMaster, MasterAddr: primary.Addr(), Quorum: n/2 + 1,
			DownAfter: SentinelDownAfter, FailoverTimeout: SentinelFailoverTimeout,
		})
	})
	for _, node := range s.Nodes {
		if err := waitSentinelKnows(ctx, node.Addr(), SentinelMaster, replicas, n-1); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	return s
}

// startParallel runs start n times at once (each server waits for its own
// PING), stops what started when the test ends, and fails the test if any
// start failed. what names the servers in errors.
func startParallel(t testing.TB, what string, n int, start func() (*localsvc.Redis, error)) []*localsvc.Redis {
	t.Helper()
	nodes := make([]*localsvc.Redis, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { nodes[i], errs[i] = start() })
	}
	wg.Wait()
	for i, node := range nodes {
		if node != nil {
			t.Cleanup(func() {
				if err := node.Stop(); err != nil {
					t.Errorf("testenv: %s %d: %v", what, i, err)
				}
			})
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatalf("testenv: start %s: %v", what, err)
		}
	}
	return nodes
}

// connectedReplicas is the number of replicas the primary at addr has.
func connectedReplicas(ctx context.Context, addr string) (int, error) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO replication of %s: %w", addr, err)
	}
	for l := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "connected_slaves:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("INFO replication of %s: no connected_slaves", addr)
}

// waitSentinelKnows waits until the Sentinel at addr lists replicas
// replicas and others other Sentinels of master. It learns replicas from
// the primary's INFO (asked at once on start) and Sentinels from their
// hello messages (every 2 s).
func waitSentinelKnows(ctx context.Context, addr, master string, replicas, others int) error {
	c := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer c.Close()
	var gotR, gotS int
	var err error
	for {
		var rs, ss []map[string]string
		if rs, err = c.Replicas(ctx, master).Result(); err == nil {
			gotR = len(rs)
			if ss, err = c.Sentinels(ctx, master).Result(); err == nil {
				gotS = len(ss)
			}
		}
		if err == nil && gotR >= replicas && gotS >= others {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sentinel %s knows %d of %d replicas and %d of %d Sentinels: %w (last error %v)",
				addr, gotR, replicas, gotS, others, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
