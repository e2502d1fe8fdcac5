//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/internal/testenv"
)

// longEnv turns on the long versions of the multi-process tests
// (make cluster-test).
const longEnv = "SECKILL_LONG"

// binary builds ./cmd/seckill once per test binary: the multi-process tests
// run it as separate OS processes, the way a deployment does.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "seckill-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "seckill")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// proc is one seckill process of a deployment under test.
type proc struct {
	name  string
	cmd   *exec.Cmd
	log   string // its stderr (JSON logs)
	done  chan struct{}
	err   error  // set when done is closed
	base  string // http://addr of the API, "" for other roles
	admin string // http://addr of the admin listener
}

// deployment is seckill as separate processes on loopback: a broker, API
// nodes, projectors, a relay and a sweeper, on shared Redis and Postgres.
type deployment struct {
	t     *testing.T
	bin   string
	env   []string
	procs []*proc
	dbURL string
	admin string // admin JWT
	sys   *system
}

func newDeployment(t *testing.T, redisURL string) *deployment {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{t: t, bin: bin, dbURL: testenv.Postgres(t)}
	brokerAddr := freeAddr(t)
	d.env = append(os.Environ(),
		"SECKILL_REDIS_URL="+redisURL,
		"SECKILL_DATABASE_URL="+d.dbURL,
		"SECKILL_KAFKA_BROKERS="+brokerAddr,
		"SECKILL_JWT_SECRET="+testSecret,
		"SECKILL_DATA="+t.TempDir(),
		"SECKILL_ADDR=", "SECKILL_ROLE=", "SECKILL_ADMIN_ADDR=",
	)
	// The log: the embedded Kafka-protocol broker as its own process.
	b := d.start("broker", "broker", "--addr", brokerAddr, "--data", t.TempDir(), "--partitions", "8")
	waitTCP(t, b, brokerAddr)
	if d.admin, err = shttp.NewToken([]byte(testSecret), "admin", true, time.Hour); err != nil {
		t.Fatal(err)
	}
	// For the HTTP helpers of the in-process tests (token, do, createSale).
	d.sys = &system{t: t, dbURL: d.dbURL, admin: d.admin}
	return d
}

// start runs `seckill args...` and stops it (SIGTERM, then SIGKILL) when
// the test ends.
func (d *deployment) start(name string, args ...string) *proc {
	d.t.Helper()
	p := &proc{name: name, log: filepath.Join(d.t.TempDir(), name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		d.t.Fatal(err)
	}
	p.cmd = exec.Command(d.bin, args...)
	p.cmd.Env = d.env
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Dies with the test binary, whatever happens to it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		d.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	d.procs = append(d.procs, p)
	d.t.Cleanup(func() { d.stop(p) })
	return p
}

// stop ends p gracefully and reports a process that failed or hung.
func (d *deployment) stop(p *proc) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			d.t.Errorf("%s exited: %v\n%s", p.name, p.err, tail(p.log, 20))
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		d.t.Errorf("%s did not stop within 30s of SIGTERM\n%s", p.name, tail(p.log, 20))
	}
}

// serve starts `seckill serve --role role` with an admin listener, and an
// API listener for the api role, and waits until it is ready.
func (d *deployment) serve(name, role string) *proc {
	d.t.Helper()
	return d.serveArgs(name, role)
}

// serveArgs is serve with more flags for `seckill serve`.
func (d *deployment) serveArgs(name, role string, extra ...string) *proc {
	d.t.Helper()
	adminAddr := freeAddr(d.t)
	args := []string{"serve", "--role", role, "--admin-addr", adminAddr, "--partitions", "8",
		"--sweep-interval", "100ms", "--shutdown-timeout", "20s"}
	args = append(args, extra...)
	var apiAddr string
	if strings.Contains(role, "api") {
		apiAddr = freeAddr(d.t)
		args = append(args, "--addr", apiAddr)
	}
	p := d.start(name, args...)
	p.admin = "http://" + adminAddr
	if apiAddr != "" {
		p.base = "http://" + apiAddr
	}
	d.waitReady(p)
	return p
}

func (d *deployment) waitReady(p *proc) {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			d.t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.log, 30))
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s not ready after 60s: %v\n%s", p.name, err, tail(p.log, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitTCP(t *testing.T, p *proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.log, 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 30s\n%s", p.name, addr, tail(p.log, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// scrape reads one node's metrics (admin listener) and returns the sum of
// the samples of name whose labels contain every one of labels.
func scrape(t *testing.T, p *proc, name string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// groupMembers returns, per member of consumer group, the partitions it is
// assigned, as the broker tells it.
func groupMembers(ctx context.Context, brokers []string, group string) (map[string][]int32, string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, "", err
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, "", err
	}
	if len(resp.Groups) != 1 {
		return nil, "", fmt.Errorf("describe %s: %d groups", group, len(resp.Groups))
	}
	g := resp.Groups[0]
	out := map[string][]int32{}
	for _, m := range g.Members {
		var a kmsg.ConsumerMemberAssignment
		if err := a.ReadFrom(m.MemberAssignment); err != nil {
			return nil, g.State, fmt.Errorf("member %s: %w", m.MemberID, err)
		}
		for _, t := range a.Topics {
			out[m.MemberID] = append(out[m.MemberID], t.Partitions...)
		}
	}
	return out, g.State, nil
}

// waitGroupShared waits until group has want members that each own at least
// one partition: the projectors share the log, none idles.
func waitGroupShared(t *testing.T, brokers []string, group string, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		members, state, err := groupMembers(context.Background(), brokers, group)
		busy := 0
		for _, ps := range members {
			if len(ps) > 0 {
				busy++
			}
		}
		if err == nil && state == "Stable" && busy == want && len(members) == want {
			t.Logf("group %s: %v", group, members)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s after 60s: state %q, members %v, err %v; want %d members owning partitions", group, state, members, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMultiProcessDeployment runs seckill the way it is deployed: the broker,
// 3 API nodes, 2 projectors in the same consumer group and a relay+sweeper
// node, each its own OS process on loopback, on one Redis (a 3-master Redis
// Cluster in the long version) and one Postgres. Shoppers buy through every
// API node round-robin. Then: accepted == stock, the orders read model holds
// exactly the accepted orders, every node served, the projectors shared the
// partitions, and `seckill audit` exits 0. The long version (SECKILL_LONG=1,
// make cluster-test) sells more, and kills a projector mid-sale (SIGKILL) and
// starts another: the survivor takes its partitions over and nothing is
// applied twice or lost.
func TestMultiProcessDeployment(t *testing.T) {
	long := os.Getenv(longEnv) != ""
	redisURL := testenv.RedisServer(t).URL()
	sales, stock, users := 1, 25, 300
	if long {
		redisURL = "redis+cluster://" + strings.Join(testenv.RedisCluster(t, 3), ",")
		sales, stock, users = 4, 250, 3000
	}
	begin := time.Now()
	d := newDeployment(t, redisURL)
	var apis []*proc
	for i := range 3 {
		apis = append(apis, d.serve(fmt.Sprintf("api%d", i+1), "api"))
	}
	projectors := []*proc{d.serve("projector1", "projector"), d.serve("projector2", "projector")}
	relay := d.serve("relay", "relay,sweeper")
	if long {
		// A second relay: the outbox leases keep one forwarder per stream.
		d.serve("relay2", "relay")
	}
	brokers := strings.Split(envOf(d.env, "SECKILL_KAFKA_BROKERS"), ",")
	// Each projection is a consumer group; the two projectors share each.
	for _, g := range []string{"orders", "inventory", "daily"} {
		waitGroupShared(t, brokers, g, 2)
	}
	t.Logf("deployment of %d processes up in %v", len(d.procs), time.Since(begin))

	s := d.sys
	bases := make([]string, len(apis))
	for i, a := range apis {
		bases[i] = a.base
	}
	s.base = bases[0]
	ids := make([]string, sales)
	for i := range ids {
		ids[i] = s.createSale(stock, "")
	}

	accepted := map[string]string{} // order → user
	sellStart := time.Now()
	for si, sale := range ids {
		if long && si == sales/2 {
			// A projector crashes mid-sale; another takes its place. The
			// group hands the dead member's partitions over once its
			// session times out.
			killed := time.Now()
			_ = projectors[0].cmd.Process.Kill()
			<-projectors[0].done
			projectors[0] = d.serve("projector3", "projector")
			waitGroupShared(t, brokers, "orders", 2)
			t.Logf("projector1 killed; its replacement shares the partitions after %v", time.Since(killed))
		}
		prefix := fmt.Sprintf("s%d-u", si)
		statuses, codes, orders := buyout(t, s, bases, sale, users, prefix)
		if statuses[http.StatusAccepted] != stock || codes["sold_out"] != users-stock {
			t.Fatalf("sale %s: statuses %v codes %v; want %d×202 and the rest sold_out", sale, statuses, codes, stock)
		}
		for user, order := range orders {
			accepted[order] = user
		}
		// A retry answers with the same order. (Through the node that took
		// the purchase: another node that learnt of the sell-out answers
		// sold_out from memory, not knowing this user bought; see
		// commands/guard.go.)
		for user, order := range orders {
			i, _ := strconv.Atoi(strings.TrimPrefix(user, prefix))
			r := s.doAt(bases[i%len(bases)], "POST", "/v1/sales/"+sale+"/purchase", s.token(user), `{"quantity":1}`)
			if r.status != http.StatusOK || r.str("order_id") != order {
				t.Errorf("retry by %s: %d %s, want 200 with %s", user, r.status, r.raw, order)
			}
			break
		}
	}
	t.Logf("%d sales × %d shoppers through %d API nodes in %v", sales, users, len(apis), time.Since(sellStart))

	// The read model: exactly the accepted orders, each once.
	pool, err := pgxpool.New(context.Background(), d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	deadline := time.Now().Add(60 * time.Second)
	var got map[string]string
	for {
		got = map[string]string{}
		rows, err := pool.Query(context.Background(), `SELECT order_id, user_id FROM orders WHERE sale_id = ANY($1) AND status <> ''`, ids)
		if err == nil {
			for rows.Next() {
				var o, u string
				if rows.Scan(&o, &u) == nil {
					got[o] = u
				}
			}
			rows.Close()
		}
		if len(got) >= len(accepted) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != len(accepted) {
		t.Errorf("read model has %d orders, want the %d accepted", len(got), len(accepted))
	}
	for o, u := range accepted {
		if got[o] != u {
			t.Errorf("accepted order %s of %s: read model has %q", o, u, got[o])
		}
	}

	// Every API node took purchases; the projectors split the work.
	for _, a := range apis {
		if n, _ := scrape(t, a, "seckill_gate_decisions_total", `command="purchase"`); n == 0 {
			t.Errorf("%s decided no purchase", a.name)
		}
	}
	var applied float64
	metricsFound := true
	for _, p := range projectors {
		n, ok := scrape(t, p, "seckill_projection_events_total", `projection="orders"`, `outcome="applied"`)
		metricsFound = metricsFound && ok
		applied += n
		if ok {
			t.Logf("%s applied %v events of the orders projection", p.name, n)
		}
	}
	if relayErrs, _ := scrape(t, relay, "seckill_relay_errors_total"); metricsFound && relayErrs == 0 && !long {
		// No relay retries: every event is in the log once, so applying
		// each exactly once is applying as many as the log holds.
		ends, err := eventsInLog(brokers)
		if err != nil {
			t.Fatal(err)
		}
		if applied != float64(ends) {
			t.Errorf("projectors applied %v events, the log holds %d: some applied twice or not at all", applied, ends)
		}
	}

	// The audit, as an operator runs it, as its own process.
	audit := exec.Command(d.bin, "audit", "--wait", "60s")
	audit.Env = d.env
	var out bytes.Buffer
	audit.Stdout, audit.Stderr = &out, &out
	if err := audit.Run(); err != nil {
		t.Fatalf("seckill audit: %v\n%s", err, out.String())
	}
	t.Logf("seckill audit:\n%s", out.String())
}

// eventsInLog is the number of records in the log's topic.
func eventsInLog(brokers []string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = testenv.Topic
	for p := range int32(8) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			n += p.Offset
		}
	}
	return n, nil
}

// envOf returns the value of key in an environment list.
func envOf(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}
