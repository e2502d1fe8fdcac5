//go:build linux

package main

// The fault-injection suite (issue 8: "nothing lost under faults"). Each
// TestFault* scenario runs seckill as separate OS processes on loopback
// (multiproc_test.go's deployment: the broker, API nodes, relays, projectors,
// sweepers), breaks one part on purpose (kill -9, a Redis or Postgres
// restart, a broker crash, duplicate delivery, a rebalance, racing
// sweepers, hostile clients, SIGTERM) and ends with the judge: `seckill
// audit` exits 0 and every order a client was told about (202, or 200 for a
// retry) is in the log and in the orders read model. Each logs one line
// "faults: NAME: accepted N, in log N, in read model N, audit clean".
//
// `go test ./...` runs the short versions (CI: 80 s with -race on 2 cores);
// `make faults` (SECKILL_LONG=1) runs the long ones: more shoppers, longer
// outages, the real consumer-group session timeout, and the appendfsync
// cost measurement. See docs/durability.md for what each scenario showed.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// faultsLong reports whether the long versions of the fault scenarios run
// (make faults sets SECKILL_LONG=1, as make cluster-test does).
func faultsLong() bool { return os.Getenv(longEnv) != "" }

// pick returns short in the CI version of a scenario and long under make faults.
func pick[T any](short, long T) T {
	if faultsLong() {
		return long
	}
	return short
}

// kill ends p with SIGKILL, as a crash would (nothing flushed, no lease
// released, no group left), and waits until it is gone.
func (d *deployment) kill(p *proc) {
	d.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		d.t.Logf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// restart runs a dead process's command again, with the same flags (so the
// same ports and data directory), and waits until it is ready: for a seckill
// serve, its /readyz; for the broker, its port.
func (d *deployment) restart(p *proc) *proc {
	d.t.Helper()
	np := d.start(p.name+"-restarted", p.cmd.Args[1:]...)
	np.base, np.admin = p.base, p.admin
	if np.admin != "" {
		d.waitReady(np)
	}
	return np
}

// setEnv sets an environment variable of the processes started from now on
// (exec keeps the last of duplicate keys, and envOf reads the last).
func (d *deployment) setEnv(key, value string) {
	d.env = append(d.env, key+"="+value)
	if key == "SECKILL_DATABASE_URL" {
		d.dbURL, d.sys.dbURL = value, value
	}
}

// brokers are the deployment's Kafka seed brokers.
func (d *deployment) brokers() []string {
	return strings.Split(envOf(d.env, "SECKILL_KAFKA_BROKERS"), ",")
}

// gate returns a gate on the deployment's Redis, for looking at it (outbox
// backlog, order hashes) the way the audit does.
func (d *deployment) gate() *commands.Gate {
	d.t.Helper()
	rdb, err := openRedis(envOf(d.env, "SECKILL_REDIS_URL"))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = rdb.Close() })
	g, err := commands.NewGate(commands.GateConfig{}, rdb)
	if err != nil {
		d.t.Fatal(err)
	}
	return g
}

// outboxBacklog is the number of outbox entries the relay has not yet
// forwarded and trimmed, over every sale.
func outboxBacklog(t *testing.T, g *commands.Gate) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := g.OutboxBacklog(ctx)
	if err != nil {
		t.Fatalf("outbox backlog: %v", err)
	}
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// outboxOrders is the number of orders placed in the outbox entries the
// relay has not yet forwarded. With group commit an entry holds a whole
// batch, so entries do not count orders.
func (d *deployment) outboxOrders(g *commands.Gate) int64 {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb, err := openRedis(envOf(d.env, "SECKILL_REDIS_URL"))
	if err != nil {
		d.t.Fatal(err)
	}
	defer func() { _ = rdb.Close() }()
	streams, err := rdb.SMembers(ctx, g.Keyspace().Outboxes()).Result()
	if err != nil {
		d.t.Fatalf("list outboxes: %v", err)
	}
	var n int64
	for _, s := range streams {
		entries, err := rdb.XRange(ctx, s, "-", "+").Result()
		if err != nil {
			d.t.Fatalf("read outbox %s: %v", s, err)
		}
		for _, e := range entries {
			for _, v := range e.Values {
				raw, _ := v.(string)
				m, err := eventstore.ToMessage([]byte(raw))
				if err != nil {
					d.t.Fatalf("outbox %s entry %s: %v", s, e.ID, err)
				}
				if m.Metadata.Get(eventstore.MetadataType) == domain.TypeOrderPlaced {
					n++
				}
			}
		}
	}
	return n
}

// waitDrained waits until the relay has forwarded every outbox entry.
func waitDrained(t *testing.T, g *commands.Gate, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := outboxBacklog(t, g)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outboxes still hold %d entries after %v", n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answer is what a client got for one request: an HTTP answer, or none.
type answer struct {
	status int // 0: no HTTP answer (connection refused or reset, timeout)
	code   string
	order  string
	body   map[string]any
	err    error
}

// newClient returns an HTTP client of its own (a killed node's dead
// connections stay out of other tests' pools) whose requests end, even
// against a frozen node.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
		},
	}
}

// call sends one request and reports what came back, never failing the test:
// under faults, no answer is an outcome.
func call(c *http.Client, method, url, token, body string, hdr ...string) answer {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		// The node died while it answered: the client heard nothing usable.
		return answer{err: err}
	}
	a := answer{status: resp.StatusCode}
	_ = json.Unmarshal(raw, &a.body)
	if e, ok := a.body["error"].(map[string]any); ok {
		a.code, _ = e["code"].(string)
	}
	a.order, _ = a.body["order_id"].(string)
	return a
}

// shoppers buy one unit each of a sale through API nodes, as the sale page
// does: a shopper that gets no answer or a 5xx (a killed node, Redis down)
// tries again with the same identity until it gets an answer, so the gate
// answers the retry with the order it may already hold. It keeps the ledger
// of what the clients were told.
type shoppers struct {
	t        *testing.T
	sys      *system // tokens
	client   *http.Client
	sale     string
	bases    []string // shopper i buys through bases[i%len(bases)]
	prefix   string
	conc     int           // shoppers at once
	rate     float64       // shoppers started per second; 0: as fast as conc allows
	retryFor time.Duration // how long a shopper keeps trying without an answer

	accepted atomic.Int64 // answers that carried an order so far

	mu          sync.Mutex
	orders      map[string]string // user → the order its answers carried
	owners      map[string]string // order → user
	final       map[string]answer // user → the answer it ended with
	retried     map[string]bool   // users with an attempt that got no answer or a 5xx
	recovered   int               // retries answered 200 with the order the lost attempt made
	noAnswer    int               // attempts that got no HTTP answer
	unavailable int               // 5xx answers
	statuses    map[int]int       // final answers by status (0: never answered)
	codes       map[string]int    // final error codes
}

func newShoppers(d *deployment, sale string, bases []string, prefix string, conc int) *shoppers {
	return &shoppers{
		t: d.t, sys: d.sys, client: newClient(conc), sale: sale, bases: bases, prefix: prefix, conc: conc,
		retryFor: 90 * time.Second,
		orders:   map[string]string{}, owners: map[string]string{}, final: map[string]answer{},
		retried: map[string]bool{}, statuses: map[int]int{}, codes: map[string]int{},
	}
}

func (b *shoppers) user(i int) string { return fmt.Sprintf("%s%05d", b.prefix, i) }

// buy runs shoppers [from, from+n) and returns once each has its final
// answer. Closing stop starts no further shoppers; those already started
// still finish (a shopper with no answer must learn whether it holds an
// order).
func (b *shoppers) buy(stop <-chan struct{}, from, n int) {
	next := make(chan int)
	go func() {
		defer close(next)
		var tick *time.Ticker
		if b.rate > 0 {
			tick = time.NewTicker(time.Duration(float64(time.Second) / b.rate))
			defer tick.Stop()
		}
		for i := from; i < from+n; i++ {
			if tick != nil {
				select {
				case <-tick.C:
				case <-stop:
					return
				}
			}
			select {
			case next <- i:
			case <-stop:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range b.conc {
		wg.Go(func() {
			for i := range next {
				b.shop(i)
			}
		})
	}
	wg.Wait()
}

// shop is one shopper: buy, and try again while there is no answer.
func (b *shoppers) shop(i int) {
	user := b.user(i)
	base := b.bases[i%len(b.bases)]
	tok := b.sys.token(user)
	deadline := time.Now().Add(b.retryFor)
	lost := false
	for {
		a := call(b.client, "POST", base+"/v1/sales/"+b.sale+"/purchase", tok, `{"quantity":1}`)
		answered := a.status != 0 && a.status < 500
		b.mu.Lock()
		if a.order != "" {
			if prev, ok := b.orders[user]; ok && prev != a.order {
				b.t.Errorf("shopper %s was told order %s, then %s", user, prev, a.order)
			}
			if u, ok := b.owners[a.order]; ok && u != user {
				b.t.Errorf("order %s was given to %s and to %s", a.order, u, user)
			}
			if _, ok := b.orders[user]; !ok {
				b.accepted.Add(1)
			}
			b.orders[user], b.owners[a.order] = a.order, user
			if lost && a.status == http.StatusOK {
				b.recovered++
			}
		}
		switch {
		case a.status == 0:
			b.noAnswer++
		case a.status >= 500:
			b.unavailable++
		}
		if !answered {
			lost, b.retried[user] = true, true
		}
		if answered || time.Now().After(deadline) {
			b.final[user] = a
			b.statuses[a.status]++
			if a.code != "" {
				b.codes[a.code]++
			}
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
	}
}

// waitAccepted waits until n shoppers hold an order.
func (b *shoppers) waitAccepted(n int64, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for b.accepted.Load() < n {
		if time.Now().After(deadline) {
			b.t.Fatalf("only %d of %d shoppers hold an order after %v", b.accepted.Load(), n, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ledger returns every order a client was told about, order → user.
func (b *shoppers) ledger() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]string, len(b.owners))
	for o, u := range b.owners {
		out[o] = u
	}
	return out
}

// told adds an order a client was told about outside the shoppers' own
// requests to the ledger.
func (b *shoppers) told(order, user string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.orders[user], b.owners[order] = order, user
}

// summary is a line on what the shoppers were told.
func (b *shoppers) summary() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("%d shoppers: final statuses %v codes %v; %d attempts got no answer, %d got a 5xx; %d shoppers had such an attempt, %d of them were answered 200 on retry with the order the lost attempt had made",
		len(b.final), b.statuses, b.codes, b.noAnswer, b.unavailable, len(b.retried), b.recovered)
}

// allAnswered fails the test if a shopper never got an answer.
func (b *shoppers) allAnswered() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := b.statuses[0]; n > 0 {
		b.t.Errorf("%d shoppers got no answer within %v of retries", n, b.retryFor)
	}
}

// matchLog checks the other direction of "nothing lost": every order of the
// sale in the log is one a shopper was told about, and no shopper holds two
// (a retry after a lost answer got the same order, not a second one).
func (b *shoppers) matchLog(fold *domain.Fold) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	perUser := map[string]int{}
	for id, o := range fold.Orders {
		if o.SaleID != b.sale {
			continue
		}
		perUser[o.UserID]++
		if b.owners[id] != o.UserID {
			b.t.Errorf("the log holds order %s of %s, which no answer told a client about", id, o.UserID)
		}
	}
	for u, n := range perUser {
		if n > 1 {
			b.t.Errorf("the log holds %d orders of shopper %s in sale %s", n, u, b.sale)
		}
	}
}

// faultResult is what a scenario reports: the counts issue 8 asks for.
type faultResult struct {
	accepted, inLog, inReadModel int
	events, duplicates           int64
}

// judge ends a scenario: `seckill audit`, the binary as an operator runs it,
// must exit 0, and every order in accepted (order → user: what clients were
// told) must be in the log and in the orders read model with its user. It
// logs the counts and returns them with the fold of the log.
func (d *deployment) judge(name string, accepted map[string]string) (*domain.Fold, faultResult) {
	t := d.t
	t.Helper()
	var (
		out bytes.Buffer
		err error
	)
	// An audit is exact on a quiet system; a sweeper that expires an order
	// while it reads shows as a difference. Such a difference is gone on the
	// next run, a real one is not.
	for attempt := 1; attempt <= 3; attempt++ {
		out.Reset()
		audit := exec.Command(d.bin, "audit", "--wait", "90s")
		audit.Env = d.env
		audit.Stdout, audit.Stderr = &out, &out
		if err = audit.Run(); err == nil {
			break
		}
		t.Logf("seckill audit (attempt %d): %v\n%s", attempt, err, out.String())
		time.Sleep(2 * time.Second)
	}
	auditResult := "clean (exit 0)"
	if err != nil {
		auditResult = "FAILED: " + err.Error()
		t.Errorf("%s: seckill audit: %v\n%s", name, err, out.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fold, _, ferr := eventstore.FoldLog(ctx, d.brokers(), eventstore.DefaultTopic)
	if ferr != nil {
		t.Fatalf("%s: fold the log: %v", name, ferr)
	}
	res := faultResult{accepted: len(accepted), events: fold.Events, duplicates: fold.Duplicates}
	ids := make([]string, 0, len(accepted))
	for o, u := range accepted {
		ids = append(ids, o)
		if st, ok := fold.Orders[o]; ok && st.Status != "" && st.UserID == u {
			res.inLog++
		} else {
			t.Errorf("%s: accepted order %s of %s is not in the log", name, o, u)
		}
	}
	pool, perr := pgxpool.New(ctx, d.dbURL)
	if perr != nil {
		t.Fatalf("%s: %v", name, perr)
	}
	defer pool.Close()
	rows, qerr := pool.Query(ctx, `SELECT order_id, user_id FROM orders WHERE order_id = ANY($1) AND status <> ''`, ids)
	if qerr != nil {
		t.Fatalf("%s: read model: %v", name, qerr)
	}
	inModel := map[string]string{}
	for rows.Next() {
		var o, u string
		if err := rows.Scan(&o, &u); err != nil {
			t.Fatalf("%s: read model: %v", name, err)
		}
		inModel[o] = u
	}
	rows.Close()
	for o, u := range accepted {
		if inModel[o] == u {
			res.inReadModel++
		} else {
			t.Errorf("%s: accepted order %s of %s is not in the orders read model", name, o, u)
		}
	}
	if d.sys.base != "" {
		d.otherModels(name, fold)
	}
	t.Logf("faults: %s: accepted %d, in log %d, in read model %d, audit %s (log: %d events, %d duplicate deliveries)",
		name, res.accepted, res.inLog, res.inReadModel, auditResult, res.events, res.duplicates)
	return fold, res
}

// otherModels checks the read models the audit does not compare yet (it
// knows the orders model only): each sale's inventory and the daily report,
// through the admin API, against the fold. A duplicate applied twice would
// count twice here. The daily model is paced (--daily-rate), so it waits
// for both to catch up.
func (d *deployment) otherModels(name string, fold *domain.Fold) {
	t := d.t
	t.Helper()
	type counts struct{ Initial, Reserved, Paid, Released, Available, Expired, Unsold int64 }
	type daily struct{ Placed, Paid, Expired, Revenue int64 }
	wantInv := map[string]counts{}
	var wantDaily daily
	for id, s := range fold.Sales {
		if !s.Known {
			continue
		}
		wantInv[id] = counts{s.Stock, s.Outstanding(), s.PaidQty, s.Released(), s.Remaining(), s.ExpiredQty, s.Unsold}
		wantDaily.Placed += s.Orders
		wantDaily.Paid += s.PaidOrders
		wantDaily.Revenue += s.PaidCents
	}
	for _, o := range fold.Orders {
		if o.Status == domain.StatusExpired {
			wantDaily.Expired++
		}
	}
	today := time.Now().UTC()
	dailyPath := "/v1/reports/daily?from=" + today.AddDate(0, 0, -1).Format(time.DateOnly) + "&to=" + today.AddDate(0, 0, 1).Format(time.DateOnly)
	client := newClient(2)
	var problems []string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		problems = problems[:0]
		for id, want := range wantInv {
			a := call(client, "GET", d.sys.base+"/v1/sales/"+id+"/inventory", d.sys.admin, "")
			got := counts{}
			num := func(k string) int64 { f, _ := a.body[k].(float64); return int64(f) }
			if a.status == http.StatusOK {
				got = counts{num("initial"), num("reserved"), num("paid"), num("released"), num("available"), num("expired"), num("unsold")}
			}
			if got != want {
				problems = append(problems, fmt.Sprintf("inventory of %s: %d %+v, log %+v", id, a.status, got, want))
			}
		}
		a := call(client, "GET", d.sys.base+dailyPath, d.sys.admin, "")
		var got daily
		rows, _ := a.body["rows"].([]any)
		for _, r := range rows {
			m, _ := r.(map[string]any)
			num := func(k string) int64 { f, _ := m[k].(float64); return int64(f) }
			got.Placed += num("placed")
			got.Paid += num("paid")
			got.Expired += num("expired")
			got.Revenue += num("revenue_cents")
		}
		if got != wantDaily {
			problems = append(problems, fmt.Sprintf("daily report: %d %+v, log %+v", a.status, got, wantDaily))
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range problems {
		t.Errorf("%s: %s", name, p)
	}
}

// freeze stops p (SIGSTOP) without killing it: its sockets stay open and
// the kernel keeps accepting what clients send it, but nothing answers.
// A test that fails before thaw still resumes it, so it can be stopped.
func freeze(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", p.name, err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Signal(syscall.SIGCONT) })
}

// thaw resumes a frozen process (SIGCONT).
func thaw(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT %s: %v", p.name, err)
	}
}

// eventRank is the order an order's events are written to its outbox in
// (purchase: StockReserved then OrderPlaced; then OrderPaid or OrderExpired;
// StockReleased after OrderExpired). The log must keep it per aggregate.
var eventRank = map[string]int{
	domain.TypeStockReserved: 0, domain.TypeOrderPlaced: 1,
	domain.TypeOrderPaid: 2, domain.TypeOrderExpired: 2, domain.TypeStockReleased: 3,
}

// logOrder reads the whole log and checks that each aggregate's events are
// in one partition and in their outbox order (first deliveries; a
// redelivery may come later). It returns the records read and how many were
// redeliveries of an event already seen.
func logOrder(t *testing.T, brokers []string) (records, redelivered int) {
	t.Helper()
	type agg struct {
		partition int32
		rank      int
		last      string
	}
	aggs := map[string]*agg{}
	seen := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bad := 0
	err := eventstore.ReadAll(ctx, brokers, eventstore.DefaultTopic, func(rec eventstore.Record) error {
		records++
		env, err := domain.DecodeEnvelope(rec.Value)
		if err != nil {
			return fmt.Errorf("record %d@%d: %w", rec.Partition, rec.Offset, err)
		}
		if seen[env.ID] {
			redelivered++
			return nil
		}
		seen[env.ID] = true
		rank, ok := eventRank[env.Type]
		if !ok {
			return nil // sale events: one each
		}
		a, ok := aggs[env.AggregateID]
		if !ok {
			aggs[env.AggregateID] = &agg{partition: rec.Partition, rank: rank, last: env.Type}
			return nil
		}
		if a.partition != rec.Partition && bad < 10 {
			bad++
			t.Errorf("aggregate %s: events in partitions %d and %d", env.AggregateID, a.partition, rec.Partition)
		}
		if rank < a.rank && bad < 10 {
			bad++
			t.Errorf("aggregate %s: %s at %d@%d after %s", env.AggregateID, env.Type, rec.Partition, rec.Offset, a.last)
		}
		a.rank, a.last = rank, env.Type
		return nil
	})
	if err != nil {
		t.Fatalf("read the log: %v", err)
	}
	return records, redelivered
}

// payer pays orders through the API, the owner's token, one payment
// reference per order (paying again with it answers the same).
type payer struct {
	t      *testing.T
	sys    *system
	client *http.Client

	mu      sync.Mutex
	answers map[string]answer // order → the last answer to its payment
}

func newPayer(d *deployment, conns int) *payer {
	return &payer{t: d.t, sys: d.sys, client: newClient(conns), answers: map[string]answer{}}
}

// pay pays order of user through base, trying again while there is no
// answer (bounded), and returns the answer.
func (p *payer) pay(base, order, user string) answer {
	var a answer
	for range 100 {
		a = call(p.client, "POST", base+"/v1/orders/"+order+"/pay", p.sys.token(user), `{"payment_ref":"ref-`+order+`"}`)
		if a.status != 0 && a.status < 500 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.mu.Lock()
	p.answers[order] = a
	p.mu.Unlock()
	return a
}

// paid returns the orders whose payment was answered 200.
func (p *payer) paid() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]bool{}
	for o, a := range p.answers {
		if a.status == http.StatusOK {
			out[o] = true
		}
	}
	return out
}

// checkPaid fails the test for an order paid (200) that the log does not
// hold as paid.
func checkPaid(t *testing.T, fold *domain.Fold, paid map[string]bool) {
	t.Helper()
	for o := range paid {
		if st := fold.Orders[o]; st == nil || st.Status != "paid" {
			t.Errorf("order %s was answered paid; the log has it %v", o, st)
		}
	}
}
