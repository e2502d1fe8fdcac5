//go:build linux

package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/loadgen"
	"github.com/seckill/seckill/internal/localsvc"
	"github.com/seckill/seckill/internal/testenv"

	shttp "github.com/seckill/seckill/http"
)

// TestFaultRedisRestartAOF kills Redis (kill -9) in the middle of a purchase
// burst and starts it again from its append-only file (appendfsync everysec,
// as `seckill dev` and compose run it). Redis writes a command to the AOF
// before it replies, so the kernel holds every acknowledged purchase when the
// process dies: all come back. Meanwhile purchases are answered 503 and
// shoppers try again; a retry gets the order its lost attempt made.
func TestFaultRedisRestartAOF(t *testing.T) {
	rate := pick(400.0, 1500.0)
	rs := testenv.RedisServer(t, localsvc.RedisConfig{AppendOnly: true, AppendFsync: "everysec"})
	d := newDeployment(t, rs.URL())
	api := d.serve("api", "api")
	d.serve("relay", "relay,sweeper")
	d.serve("projector", "projector")
	d.sys.base = api.base
	users := int(rate * 10)
	sale := d.sys.createSale(users, `,"per_user_limit":1`)

	b := newShoppers(d, sale, []string{api.base}, "a", 16)
	b.rate = rate
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); b.buy(stop, 0, users) }()
	b.waitAccepted(int64(rate), time.Minute)

	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := b.accepted.Load()
	// Longer than go-redis's own retries (3, backoff up to 512 ms) hide: a
	// second's outage only slows purchases down.
	outage := pick(3*time.Second, 5*time.Second)
	time.Sleep(outage)
	if err := rs.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("redis killed after %d orders, restarted from its AOF %v later", killedAt, outage)
	time.Sleep(time.Second)
	close(stop)
	<-done

	t.Log(b.summary())
	b.allAnswered()
	if b.unavailable+b.noAnswer == 0 {
		t.Error("no purchase met the dead Redis: the scenario tested nothing")
	}
	fold, _ := d.judge("redis kill -9 + restart (AOF everysec)", b.ledger())
	b.matchLog(fold)
}

// TestFaultRedisLoss loses Redis entirely (kill -9 of a server without
// persistence; a fresh, empty one on the same port), as seed 001's crash
// did, and restores the gate from the log with `seckill gate restore
// --force`, the API stopped meanwhile as the runbook says.
//
// First the honest case: the burst stops and the relay drains the outboxes
// before Redis dies, so the log holds every accepted order. After the
// restore every shopper's retry is answered with its order, new shoppers buy
// from the stock that is left, and the audit finds the gate equal to the log.
//
// Then the measurement: Redis dies in the middle of a burst. What the relay
// had not yet forwarded is gone with it: those shoppers were told 202, and
// their orders are in neither the log nor the restored gate. The test
// reports how many (docs/durability.md) and checks that everything else
// still holds.
func TestFaultRedisLoss(t *testing.T) {
	users := pick(400, 2000)
	rs := testenv.RedisServer(t) // no AOF, no RDB: a kill loses everything
	d := newDeployment(t, rs.URL())
	api := d.serve("api", "api")
	d.serve("relay", "relay,sweeper")
	d.serve("projector", "projector")
	d.sys.base = api.base
	sale := d.sys.createSale(3*users, `,"per_user_limit":1`)
	g := d.gate()

	// crash kills Redis, then stops the API node (SIGTERM: the requests in
	// flight are answered, with 503s); from then on no client is told
	// anything until recover has run.
	crash := func() {
		t.Helper()
		if err := rs.Kill(); err != nil {
			t.Fatal(err)
		}
		d.stop(api)
	}
	// recover starts an empty Redis on the same port, restores the gate
	// from the log, and starts the API node again.
	recover := func() string {
		t.Helper()
		if err := rs.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := outboxBacklog(t, g); n != 0 {
			t.Fatalf("the new Redis is not empty: %d outbox entries", n)
		}
		restore := exec.Command(d.bin, "gate", "restore", "--force")
		restore.Env = d.env
		var out bytes.Buffer
		restore.Stdout, restore.Stderr = &out, &out
		if err := restore.Run(); err != nil {
			t.Fatalf("seckill gate restore --force: %v\n%s", err, out.String())
		}
		api = d.restart(api)
		return out.String()
	}

	// The honest case: drained before the loss.
	b := newShoppers(d, sale, []string{api.base}, "h", 32)
	b.buy(nil, 0, users)
	waitDrained(t, g, time.Minute)
	crash()
	restored := recover()
	t.Logf("gate restore after the loss:\n%s", restored)
	// The API node comes back on the same port: shoppers keep their base.
	// Every shopper's retry is answered with the order it holds (the
	// idempotency index came back from the log), and new shoppers buy.
	b.buy(nil, 0, users)
	if b.statuses[http.StatusOK] != users {
		t.Errorf("retries after the restore: statuses %v codes %v; want %d×200 with each shopper's order", b.statuses, b.codes, users)
	}
	b.buy(nil, users, users/2)
	t.Log(b.summary())
	b.allAnswered()
	fold, _ := d.judge("redis lost after the relay drained, gate restore --force", b.ledger())
	b.matchLog(fold)

	// The measurement: Redis dies mid-burst, the outboxes not drained. The
	// sale is in the log, and the relay forwards it, before the burst: the
	// relay finds a new sale's outbox within a second (DiscoverInterval),
	// and until then the whole sale, SaleCreated included, is at risk.
	sale2 := d.sys.createSale(100*users, `,"per_user_limit":1`)
	waitDrained(t, g, time.Minute)
	m := newShoppers(d, sale2, []string{api.base}, "m", 32)
	// Paced in CI; as fast as 32 clients go in the long version, the worst
	// case for the relay's lag.
	m.rate = pick(1000.0, 0)
	stop := make(chan struct{})
	done := make(chan struct{})
	burst := time.Now()
	go func() { defer close(done); m.buy(stop, 0, 100*users) }()
	m.waitAccepted(int64(pick(1500, 8000)), time.Minute) // a steady burst
	// Accepted before the outboxes are read: every order accepted by then
	// is in an outbox or in the log when they are read, and every order
	// accepted later counts in len(before) - atBacklog below.
	atBacklog := m.accepted.Load()
	rate := float64(atBacklog) / time.Since(burst).Seconds()
	backlog := d.outboxOrders(g)
	crash()
	before := m.ledger() // every order a client was told of before the loss
	restored = recover()
	t.Logf("gate restore after the loss mid-burst:\n%s", restored)
	time.Sleep(500 * time.Millisecond) // shoppers buy from the restored gate
	close(stop)
	<-done
	waitDrained(t, g, time.Minute)
	t.Log(m.summary())
	m.allAnswered()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fold, _, err := eventstore.FoldLog(ctx, d.brokers(), eventstore.DefaultTopic)
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	all := b.ledger()
	for o, u := range m.ledger() {
		if _, told := before[o]; told {
			if st, ok := fold.Orders[o]; !ok || st.UserID != u {
				lost++
				continue
			}
		}
		all[o] = u // kept, or accepted after the restore: both must be everywhere
	}
	t.Logf("faults: redis lost mid-burst without persistence, %.0f purchases/s: %d orders told 202 before the loss, the outboxes held %d orders not yet relayed a moment before it; %d accepted orders lost, %d kept",
		rate, len(before), backlog, lost, len(before)-lost)
	// The outboxes bound the loss: what they held a moment before the
	// kill, plus what was accepted in that moment.
	if bound := backlog + int64(len(before)) - atBacklog; int64(lost) > bound {
		t.Errorf("lost %d orders, more than the %d the outboxes can have held when Redis died", lost, bound)
	}
	m.matchLog(fold)
	// The gate restored from the log equals the log: the audit is clean;
	// the lost orders are in neither.
	d.judge("after the mid-burst loss and restore (orders kept)", all)
}

// TestFaultAppendFsyncCost measures what `appendfsync always` costs against
// `everysec` (and against no AOF at all): purchase throughput through one
// API node per Redis, every request a new shopper who gets a reservation
// (the whole purchase script, the path that writes), at 64 clients and at 4.
// The three set-ups run side by side and take turns, five rounds of 3 s
// each, and the median round counts: the machine is shared, and turns spread
// its noise over all three. A measurement for docs/durability.md, run by
// make faults only.
func TestFaultAppendFsyncCost(t *testing.T) {
	if !faultsLong() {
		t.Skipf("a measurement: make faults (%s=1) runs it", longEnv)
	}
	var setups []*costSetup
	for _, su := range []struct {
		name string
		cfg  localsvc.RedisConfig
	}{
		{"no AOF", localsvc.RedisConfig{}},
		{"AOF, appendfsync everysec", localsvc.RedisConfig{AppendOnly: true, AppendFsync: "everysec"}},
		{"AOF, appendfsync always", localsvc.RedisConfig{AppendOnly: true, AppendFsync: "always"}},
	} {
		rs := testenv.RedisServer(t, su.cfg)
		setups = append(setups, newCostSetup(t, su.name, rs.URL(), []string{rs.Addr()}))
	}
	t.Logf("faults: purchase throughput by Redis persistence, one API node each, median of %d rounds of %v, GOMAXPROCS %d:\n%s",
		costRounds, costRound, runtime.GOMAXPROCS(0), compareThroughput(t, setups))
}

// The rounds of a throughput comparison: the set-ups take turns, five
// rounds of 3 s each, and the median round counts.
const (
	costRounds = 5
	costRound  = 3 * time.Second
)

// costSetup is one set-up of a throughput comparison: an API node (admission
// off: we measure Redis and the node, not the node's cap) on its own Redis
// and its own sale, with the servers whose CPU to count.
type costSetup struct {
	name  string
	base  string
	sale  string
	addrs []string                 // Redis servers whose CPU counts
	runs  map[int][]loadgen.Result // by clients
	cpu   map[int][]float64        // Redis CPU µs per purchase, by clients
}

func newCostSetup(t *testing.T, name, redisURL string, addrs []string, serveArgs ...string) *costSetup {
	t.Helper()
	d := newDeployment(t, redisURL)
	api := d.serveArgs("api", "api", append([]string{"--admission-rps", "0"}, serveArgs...)...)
	d.sys.base = api.base
	return &costSetup{name: name, base: api.base, sale: d.sys.createSale(10_000_000, `,"per_user_limit":1`), addrs: addrs,
		runs: map[int][]loadgen.Result{}, cpu: map[int][]float64{}}
}

// compareThroughput measures purchase throughput through each set-up, every
// request a new shopper who gets a reservation (the whole purchase script,
// the path that writes), at 64 clients and at 4. The set-ups run side by
// side and take turns: the machine is shared, and turns spread its noise
// over all of them. It returns the table of medians.
func compareThroughput(t *testing.T, setups []*costSetup) string {
	t.Helper()
	var (
		mu    sync.Mutex
		next  int
		cache = map[int]string{}
	)
	// A token per shopper, made as the load generator asks (shoppers are
	// never reused: every purchase is a new reservation).
	token := func(k int) string {
		mu.Lock()
		defer mu.Unlock()
		if tok, ok := cache[k]; ok {
			return tok
		}
		tok, err := shttp.NewToken([]byte(testSecret), fmt.Sprintf("f%d", k), false, time.Hour)
		if err != nil {
			t.Error(err)
		}
		cache[k] = "Bearer " + tok
		return cache[k]
	}
	for range costRounds {
		for _, conc := range []int{64, 4} {
			for _, su := range setups {
				cpu0 := redisCPU(t, su.addrs)
				start := next
				res, err := loadgen.Run(context.Background(), loadgen.Config{
					BaseURL: su.base, Concurrency: conc, Duration: costRound, Requests: 1_000_000,
					Next: func(j int) loadgen.Request {
						return loadgen.Request{Method: "POST", Path: "/v1/sales/" + su.sale + "/purchase",
							Header: http.Header{"Authorization": {token(start + j)}}}
					},
				}, nil)
				if err != nil {
					t.Fatal(err)
				}
				// Requests built but cut off by the deadline used shoppers too.
				next += res.Sent + conc
				mu.Lock()
				clear(cache)
				mu.Unlock()
				// Not a failure: a measurement. A stalled fsync or replica (or
				// the shared machine stalling everything) makes the gate answer
				// 503; the median round absorbs it.
				if res.ByStatus[http.StatusAccepted] != res.Sent {
					t.Logf("%s, %d clients: statuses %v (first error %q)", su.name, conc, res.ByStatus, res.FirstErr)
				}
				su.runs[conc] = append(su.runs[conc], res)
				su.cpu[conc] = append(su.cpu[conc], (redisCPU(t, su.addrs)-cpu0)*1e6/float64(max(1, res.Sent)))
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-34s %8s %12s %8s %8s %16s   %s\n", "redis", "clients", "purchases/s", "p50", "p99", "redis CPU µs/op", "rounds (purchases/s)")
	for _, conc := range []int{64, 4} {
		for _, su := range setups {
			runs := slices.Clone(su.runs[conc])
			var each []string
			for _, r := range runs {
				each = append(each, fmt.Sprintf("%.0f", r.Throughput()))
			}
			slices.SortFunc(runs, func(a, b loadgen.Result) int { return cmp.Compare(a.Throughput(), b.Throughput()) })
			med := runs[len(runs)/2]
			cpu := slices.Sorted(slices.Values(su.cpu[conc]))[len(su.cpu[conc])/2]
			fmt.Fprintf(&b, "%-34s %8d %12.0f %8v %8v %16.0f   %s\n", su.name, conc, med.Throughput(),
				med.Percentile(50).Round(10*time.Microsecond), med.Percentile(99).Round(10*time.Microsecond), cpu, strings.Join(each, " "))
		}
	}
	return b.String()
}
