//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/internal/loadgen"
	"github.com/seckill/seckill/internal/testenv"
)

// benchEnv turns on TestClusterThroughput (make cluster-bench).
const benchEnv = "SECKILL_CLUSTER_BENCH"

// TestClusterThroughput measures purchase throughput (every request a new
// shopper who gets a reservation: the full purchase script, the expensive
// path) through seckill API nodes on one redis-server and on a 3-master
// Redis Cluster, in the same run on this machine, and logs a table. It is a
// measurement, not a check, so it runs only when asked:
//
//	SECKILL_CLUSTER_BENCH=1 go test -run TestClusterThroughput -v ./cmd/seckill
//
// Scenarios: one hot sale (all its keys in one slot, so one master does all
// the work on the cluster too), and three sales on three different masters,
// through one API node and through three.
func TestClusterThroughput(t *testing.T) {
	if os.Getenv(benchEnv) == "" {
		t.Skipf("a benchmark: set %s=1 to run it", benchEnv)
	}
	dur := 8 * time.Second
	if v, err := time.ParseDuration(os.Getenv(benchEnv + "_DURATION")); err == nil {
		dur = v
	}
	const conc = 64
	singleSrv := testenv.RedisServer(t)
	single := singleSrv.URL()
	clusterAddrs := testenv.RedisCluster(t, 3)
	cluster := "redis+cluster://" + strings.Join(clusterAddrs, ",")

	// Tokens for distinct shoppers, minted up front so the load generator
	// spends its CPU on requests.
	const shoppers = 400_000
	tokens := make([]string, shoppers)
	for i := range tokens {
		tok, err := shttp.NewToken([]byte(testSecret), "b"+strconv.Itoa(i), false, 2*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = "Bearer " + tok
	}

	type scenario struct {
		name  string
		redis string
		addrs []string // the Redis servers, for their CPU time
		nodes int      // API nodes
		sales int      // sales, spread over the masters on the cluster
	}
	scenarios := []scenario{
		{"1 redis-server, 1 API node, 1 hot sale", single, []string{singleSrv.Addr()}, 1, 1},
		{"3-master cluster, 1 API node, 1 hot sale", cluster, clusterAddrs, 1, 1},
		{"1 redis-server, 1 API node, 3 sales", single, []string{singleSrv.Addr()}, 1, 3},
		{"3-master cluster, 1 API node, 3 sales (one per master)", cluster, clusterAddrs, 1, 3},
		{"1 redis-server, 3 API nodes, 3 sales", single, []string{singleSrv.Addr()}, 3, 3},
		{"3-master cluster, 3 API nodes, 3 sales (one per master)", cluster, clusterAddrs, 3, 3},
	}
	type row struct {
		scenario
		res                 loadgen.Result
		gen, api, rds, busy float64 // CPU seconds of the load generator, API nodes, Redis; busy cores
	}
	var rows []row
	next := 0 // the next unused shopper
	for _, sc := range scenarios {
		d := newDeployment(t, sc.redis)
		// Admission off: we measure what Redis and the node can do, not the
		// node's default cap of 20000/s.
		var (
			bases []string
			apis  []*proc
		)
		for i := range sc.nodes {
			p := d.serveArgs(fmt.Sprintf("api%d", i+1), "api", "--admission-rps", "0")
			bases = append(bases, p.base)
			apis = append(apis, p)
		}
		d.sys.base = bases[0]
		var sales []string
		masters := map[string]bool{}
		for len(sales) < sc.sales {
			id := d.sys.createSale(10_000_000, `,"per_user_limit":1`)
			if sc.redis == cluster && sc.sales > 1 {
				// One sale per master, so the load spreads over them.
				m := masterOf(t, clusterAddrs, id)
				if masters[m] {
					continue
				}
				masters[m] = true
			}
			sales = append(sales, id)
		}
		// Each node gets its share of the clients; requests go round-robin
		// over the sales.
		results := make([]loadgen.Result, len(bases))
		gen0, api0, rds0 := selfCPU(), procsCPU(apis), redisCPU(t, sc.addrs)
		var wg sync.WaitGroup
		start := next
		for i, base := range bases {
			wg.Go(func() {
				res, err := loadgen.Run(context.Background(), loadgen.Config{
					BaseURL: base, Concurrency: conc / len(bases), Duration: dur,
					Requests: (shoppers - start) / len(bases),
					Next: func(j int) loadgen.Request {
						k := start + i + j*len(bases)
						return loadgen.Request{Method: "POST", Path: "/v1/sales/" + sales[k%len(sales)] + "/purchase",
							Header: http.Header{"Authorization": {tokens[k]}}}
					},
				}, nil)
				if err != nil {
					t.Error(err)
				}
				results[i] = res
			})
		}
		wg.Wait()
		total := loadgen.Merge(results...)
		gen, api, rds := selfCPU()-gen0, procsCPU(apis)-api0, redisCPU(t, sc.addrs)-rds0
		next += total.Sent + len(bases)
		if total.ByStatus[http.StatusAccepted] != total.Sent {
			t.Errorf("%s: statuses %v codes %v (first error %q); want every request 202", sc.name, total.ByStatus, total.ByCode, total.FirstErr)
		}
		rows = append(rows, row{sc, total, gen, api, rds, (gen + api + rds) / total.Elapsed.Seconds()})
		t.Logf("%s: %.0f purchases/s, p50 %v, p99 %v", sc.name, total.Throughput(), total.Percentile(50), total.Percentile(99))
		for _, p := range d.procs {
			d.stop(p)
		}
		// Free the memory the outboxes took before the next scenario.
		flushRedis(t, sc.redis)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "purchase throughput, %d clients, %v per scenario, GOMAXPROCS %d, %d CPUs:\n", conc, dur, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(&b, "%-58s %11s %8s %8s   %s\n", "scenario", "purchases/s", "p50", "p99",
		"CPU µs per purchase: load generator / API nodes / Redis; cores busy")
	for _, r := range rows {
		per := func(sec float64) float64 { return sec * 1e6 / float64(max(1, r.res.Sent)) }
		fmt.Fprintf(&b, "%-58s %11.0f %8v %8v   %4.0f / %4.0f / %4.0f; %.2f\n", r.name, r.res.Throughput(),
			r.res.Percentile(50).Round(10*time.Microsecond), r.res.Percentile(99).Round(10*time.Microsecond),
			per(r.gen), per(r.api), per(r.rds), r.busy)
	}
	t.Log("\n" + b.String())
}

// selfCPU is the CPU time of this process (the load generator) in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procsCPU is the CPU time of the processes in seconds (/proc/PID/stat
// utime + stime, in clock ticks of 1/100 s).
func procsCPU(ps []*proc) float64 {
	var sum float64
	for _, p := range ps {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		sum += (ut + st) / 100
	}
	return sum
}

// redisCPU is the CPU time of the Redis servers at addrs in seconds (INFO cpu).
func redisCPU(t *testing.T, addrs []string) float64 {
	t.Helper()
	var sum float64
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		info, err := c.Info(context.Background(), "cpu").Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		for l := range strings.Lines(info) {
			k, v, _ := strings.Cut(strings.TrimSpace(l), ":")
			if k == "used_cpu_sys" || k == "used_cpu_user" {
				f, _ := strconv.ParseFloat(v, 64)
				sum += f
			}
		}
	}
	return sum
}

// masterOf returns the address of the cluster master that holds sale.
func masterOf(t *testing.T, addrs []string, sale string) string {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	n, err := cc.MasterForKey(context.Background(), "seckill:{sale:"+sale+"}:sale")
	if err != nil {
		t.Fatal(err)
	}
	return n.Options().Addr
}

// flushRedis empties the Redis (every master of a cluster) at url.
func flushRedis(t *testing.T, url string) {
	t.Helper()
	rdb, err := openRedis(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
	} else {
		err = rdb.FlushAll(ctx).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
}
