package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
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
	return startCluster(t, masters, 0).Addrs()
}

// Cluster is a Redis Cluster of this test: its masters and, for each, its
// replicas, as processes a fault test can Kill or Freeze.
type Cluster struct {
	Masters  []*localsvc.Redis
	Replicas [][]*localsvc.Redis // Replicas[i] replicate Masters[i]
}

// Addrs are the masters' addresses, the seeds a cluster client needs.
func (c *Cluster) Addrs() []string { return nodeAddrs(c.Masters) }

// RedisClusterReplicas is RedisCluster with replicas replicas per master,
// linked and in sync when it returns. When a master dies the cluster fails
// its slots over to a replica after the node timeout (ClusterNodeTimeout)
// and an election.
func RedisClusterReplicas(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	return startCluster(t, masters, replicas)
}

// ClusterNodeTimeout is how long a cluster node of this package may be
// unreachable before the others count it failed (and a replica of a master
// takes its slots over).
const ClusterNodeTimeout = 2000 * time.Millisecond

// startCluster builds the cluster the way an operator does: each server
// runs with cluster-enabled, `redis-cli --cluster create` spreads the 16384
// slots over the masters, and each replica is added with
// `redis-cli --cluster add-node --cluster-slave --cluster-master-id`, which
// names its master exactly.
func startCluster(t testing.TB, masters, replicas int) *Cluster {
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

	all := startParallel(t, "cluster node", masters*(1+replicas), func() (*localsvc.Redis, error) {
		return startClusterNode(ctx, t.TempDir())
	})
	c := &Cluster{Masters: all[:masters], Replicas: make([][]*localsvc.Redis, masters)}
	addrs := c.Addrs()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := waitClusterOK(ctx, addrs, masters); err != nil {
		t.Fatalf("testenv: %v\nredis-cli said:\n%s", err, out)
	}
	if replicas == 0 {
		return c
	}
	for i, m := range c.Masters {
		for k := range replicas {
			c.Replicas[i] = append(c.Replicas[i], addReplica(t, ctx, cli, all[masters+i*replicas+k], m.Addr()))
		}
	}
	if err := waitClusterOK(ctx, nodeAddrs(all), len(all)); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for _, rs := range c.Replicas {
		for _, r := range rs {
			if err := WaitReplicaLinked(ctx, r.Addr()); err != nil {
				t.Fatalf("testenv: cluster %v", err)
			}
		}
	}
	return c
}

// AddReplica starts a new cluster node and adds it as a replica of the
// master at addr (a replacement for a machine that died, say), and returns
// once it is linked and in sync.
func (c *Cluster) AddReplica(t testing.TB, master string) *localsvc.Redis {
	t.Helper()
	cli, err := localsvc.FindBinary("redis-cli")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	r := startParallel(t, "cluster node", 1, func() (*localsvc.Redis, error) {
		return startClusterNode(ctx, t.TempDir())
	})[0]
	addReplica(t, ctx, cli, r, master)
	if err := WaitReplicaLinked(ctx, r.Addr()); err != nil {
		t.Fatalf("testenv: cluster %v", err)
	}
	return r
}

// addReplica joins the empty cluster node r to the cluster as a replica of
// the master at addr, with `redis-cli --cluster add-node --cluster-slave
// --cluster-master-id`, which names its master exactly.
func addReplica(t testing.TB, ctx context.Context, cli string, r *localsvc.Redis, master string) *localsvc.Redis {
	t.Helper()
	id, err := nodeID(ctx, master)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	out, err := exec.CommandContext(ctx, cli, "--cluster", "add-node", r.Addr(), master,
		"--cluster-slave", "--cluster-master-id", id).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: redis-cli --cluster add-node %s as a replica of %s: %v\n%s", r.Addr(), master, err, out)
	}
	return r
}

func nodeAddrs(nodes []*localsvc.Redis) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Addr()
	}
	return out
}

// nodeID is the cluster node id of the node at addr.
func nodeID(ctx context.Context, addr string) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return "", fmt.Errorf("CLUSTER MYID of %s: %w", addr, err)
	}
	return id, nil
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
				"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds())),
				// A lost master without a replica must not make the rest
				// refuse the slots they still serve.
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

// waitClusterOK waits until every node of addrs says the cluster is ok and
// knows known nodes: redis-cli returns once the slots are assigned, but the
// nodes learn of each other over the bus a moment later.
func waitClusterOK(ctx context.Context, addrs []string, known int) error {
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		var last string
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_slots_ok:16384") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(known)+"\r\n") {
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
