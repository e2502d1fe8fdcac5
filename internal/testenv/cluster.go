package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/internal/localsvc"
)

// RedisCluster starts a Redis Cluster of masters redis-server processes on
// loopback for this test alone (no replicas, every slot assigned, cluster
// state ok on every node) and returns the addresses of its masters. The
// servers are stopped when the test ends. Redis needs at least 3 masters for
// a cluster; fewer fail the test.
//
// It is built the way an operator builds one: each server runs with
// cluster-enabled, then `redis-cli --cluster create` spreads the 16384 slots
// over them.
func RedisCluster(t testing.TB, masters int) []string {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testenv.RedisCluster: %d masters; Redis Cluster needs at least 3", masters)
	}
	cli, err := localsvc.FindBinary("redis-cli")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	// Start the nodes in parallel: each waits for its own PING.
	nodes := make([]*localsvc.Redis, masters)
	errs := make([]error, masters)
	var wg sync.WaitGroup
	for i := range masters {
		wg.Go(func() { nodes[i], errs[i] = startClusterNode(ctx, t.TempDir()) })
	}
	wg.Wait()
	for i, n := range nodes {
		if n != nil {
			t.Cleanup(func() {
				if err := n.Stop(); err != nil {
					t.Errorf("testenv: cluster node %d: %v", i, err)
				}
			})
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatalf("testenv: start cluster node: %v", err)
		}
	}

	addrs := make([]string, masters)
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := waitClusterOK(ctx, addrs); err != nil {
		t.Fatalf("testenv: %v\nredis-cli said:\n%s", err, out)
	}
	return addrs
}

// RedisClusterClient is RedisCluster with a cluster client of it, closed
// when the test ends.
func RedisClusterClient(t testing.TB, masters int) *redis.ClusterClient {
	t.Helper()
	addrs := RedisCluster(t, masters)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startClusterNode starts one cluster-enabled redis-server. The cluster bus
// listens on a port of its own, chosen here too: by default it is the client
// port + 10000, which may be taken or, above 55535, not a port at all.
func startClusterNode(ctx context.Context, dir string) (*localsvc.Redis, error) {
	var lastErr error
	for range 5 {
		port, bus, err := twoFreePorts()
		if err != nil {
			return nil, err
		}
		r, err := localsvc.StartRedis(ctx, localsvc.RedisConfig{
			Dir:  dir,
			Port: port,
			ExtraArgs: []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-port", strconv.Itoa(bus),
				// Short, so a test that kills a node sees the failure soon.
				"--cluster-node-timeout", "2000",
				// A test cluster has no replicas: a lost node must not make
				// the rest refuse the slots they still serve.
				"--cluster-require-full-coverage", "no",
			},
		})
		if err == nil {
			return r, nil
		}
		// Another process took one of the ports between our pick and the
		// bind; pick again.
		lastErr = err
	}
	return nil, lastErr
}

// twoFreePorts returns two distinct free ports on loopback, holding both
// while it picks so the kernel cannot hand out the same one twice.
func twoFreePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

// waitClusterOK waits until every node says the cluster is ok and knows
// every other node: redis-cli returns once the slots are assigned, but the
// nodes learn of each other over the bus a moment later.
func waitClusterOK(ctx context.Context, addrs []string) error {
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		var last string
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_slots_ok:16384") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(addrs))+"\r\n") {
				break
			}
			last = info
			if err != nil {
				last = err.Error()
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("cluster node %s not ok: %w; last CLUSTER INFO:\n%s", addr, ctx.Err(), last)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}
