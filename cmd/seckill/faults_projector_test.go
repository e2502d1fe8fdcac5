//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

// projectionGroups are the consumer groups of the projections (named after
// them; projections/projection.go).
var projectionGroups = []string{"orders", "inventory", "daily"}

// TestFaultProjectorRebalance delivers events twice and out of order, across
// every partition, and rebalances the consumer groups in the middle of a run:
// a backlog of purchases and payments is made with no projector running;
// then copies of a third of the orders' events are appended to the log, each
// order's copies in reverse (its OrderPaid again before its OrderPlaced
// again, both after the originals); then two projector processes start on it
// in the same groups, and one is killed (kill -9) while it applies. Its
// uncommitted batch is lost with it; the survivor takes its partitions over
// from the positions in Postgres. Every read model (orders, inventory, daily)
// must equal the fold of the log: nothing skipped, nothing applied twice.
//
// A killed member leaves its group only when its session times out (45 s,
// franz-go's default). The long version waits for that; the short one has
// the broker forget the dead member at once (LeaveGroup on its behalf, what
// the timeout does), so CI does not sit through it.
func TestFaultProjectorRebalance(t *testing.T) {
	users := pick(1500, 6000)
	d := newDeployment(t, testenv.RedisServer(t).URL())
	api := d.serve("api", "api")
	d.serve("relay", "relay,sweeper")
	d.sys.base = api.base
	sale := d.sys.createSale(2*users, `,"per_user_limit":1`)
	g := d.gate()
	brokers := d.brokers()

	// The backlog.
	b := newShoppers(d, sale, []string{api.base}, "g", 32)
	b.buy(nil, 0, users)
	p := newPayer(d, 16)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	i := 0
	for o, u := range b.ledger() {
		if i++; i%2 == 0 {
			sem <- struct{}{}
			wg.Go(func() { defer func() { <-sem }(); p.pay(api.base, o, u) })
		}
	}
	wg.Wait()
	waitDrained(t, g, time.Minute)
	copies := injectDuplicates(t, brokers, 3)

	// Two projectors, small batches so that a run is many transactions.
	start := func(name string) *proc {
		adminAddr := freeAddr(t)
		pr := d.start(name, "serve", "--role", "projector", "--admin-addr", adminAddr, "--partitions", "8",
			"--projection-batch", "128", "--shutdown-timeout", "20s")
		pr.admin = "http://" + adminAddr
		return pr
	}
	p1, p2 := start("projector1"), start("projector2")
	d.waitReady(p1)
	d.waitReady(p2)
	// Kill whichever applies first, as soon as it has applied something.
	var victim, survivor *proc
	for deadline := time.Now().Add(30 * time.Second); victim == nil; time.Sleep(10 * time.Millisecond) {
		for _, pr := range []*proc{p1, p2} {
			if n, _ := scrape(t, pr, "seckill_projection_events_total", `projection="orders"`, `outcome="applied"`); n > 0 {
				victim = pr
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no projector applied anything in 30s")
		}
	}
	survivor = p1
	if victim == p1 {
		survivor = p2
	}
	applied, _ := scrape(t, victim, "seckill_projection_events_total", `projection="orders"`, `outcome="applied"`)
	ports, err := socketPorts(victim.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	d.kill(victim)
	killed := time.Now()
	t.Logf("%s killed after applying %v orders events of the %d-record backlog (with %d duplicates)", victim.name, applied, users*2+len(p.paid())+copies, copies)
	if !faultsLong() {
		for _, grp := range projectionGroups {
			n, err := expel(context.Background(), brokers, grp, ports)
			if err != nil {
				t.Fatalf("expel the dead member of %s: %v", grp, err)
			}
			t.Logf("group %s: the broker forgot %d dead member(s)", grp, n)
		}
	}
	// Purchases go on while the groups rebalance.
	b.buy(nil, users, users/4)
	for _, grp := range projectionGroups {
		waitSoleMember(t, brokers, grp, 2*time.Minute)
	}
	t.Logf("%s owns every partition of every group %v after the kill", survivor.name, time.Since(killed).Round(100*time.Millisecond))

	t.Log(b.summary())
	b.allAnswered()
	fold, _ := d.judge("duplicates, re-ordering and a rebalance (projector kill -9)", b.ledger())
	b.matchLog(fold)
	checkPaid(t, fold, p.paid())
	if fold.Duplicates < int64(copies) {
		t.Errorf("the fold skipped %d duplicates; %d were injected", fold.Duplicates, copies)
	}
	// One history entry per event type: a redelivery added nothing.
	pool, err := pgxpool.New(context.Background(), d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var dupHistory int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM orders
		WHERE jsonb_array_length(history) <> (SELECT count(DISTINCT e->>'type') FROM jsonb_array_elements(history) e)`).Scan(&dupHistory); err != nil {
		t.Fatal(err)
	}
	if dupHistory > 0 {
		t.Errorf("%d orders have an event twice in their history", dupHistory)
	}
}

// injectDuplicates appends copies of the events of every k-th aggregate of
// the log back to it (same key and value, the relay's partitioner, so the
// same partition), each aggregate's copies in reverse order: a redelivery
// that comes late and out of order. It returns the number of copies.
func injectDuplicates(t *testing.T, brokers []string, k int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	byAgg := map[string][]eventstore.Record{}
	var order []string
	err := eventstore.ReadAll(ctx, brokers, eventstore.DefaultTopic, func(rec eventstore.Record) error {
		a := string(rec.Key)
		if _, ok := byAgg[a]; !ok {
			order = append(order, a)
		}
		byAgg[a] = append(byAgg[a], rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(eventstore.Partitioner()),
		kgo.DefaultProduceTopic(eventstore.DefaultTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i, a := range order {
		if i%k != 0 {
			continue
		}
		evs := byAgg[a]
		for j := len(evs) - 1; j >= 0; j-- {
			env, err := domain.DecodeEnvelope(evs[j].Value)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Key: evs[j].Key, Value: evs[j].Value, Headers: []kgo.RecordHeader{
				{Key: "_watermill_message_uuid", Value: []byte(env.ID)},
				{Key: "type", Value: []byte(env.Type)},
				{Key: "aggregate_id", Value: []byte(env.AggregateID)},
			}})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce duplicates: %v", err)
	}
	return len(recs)
}

// socketPorts returns the local TCP ports of pid's sockets, from /proc: the
// broker names a group member by the address its connection came from.
func socketPorts(pid int) (map[string]bool, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	ports := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if port, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
				ports[strconv.FormatUint(port, 10)] = true
			}
		}
		f.Close()
	}
	return ports, nil
}

// expel has the broker remove the members of group whose connections came
// from ports (a dead process's), which is what it does by itself once their
// session times out. It returns how many it removed.
func expel(ctx context.Context, brokers []string, group string, ports map[string]bool) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	desc := kmsg.NewPtrDescribeGroupsRequest()
	desc.Groups = []string{group}
	resp, err := desc.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("describe %s: %w", group, err)
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = group
	for _, g := range resp.Groups {
		for _, m := range g.Members {
			if port := m.ClientHost[strings.LastIndexByte(m.ClientHost, ':')+1:]; ports[port] {
				lm := kmsg.NewLeaveGroupRequestMember()
				lm.MemberID = m.MemberID
				leave.Members = append(leave.Members, lm)
			}
		}
	}
	if len(leave.Members) == 0 {
		return 0, nil
	}
	lresp, err := leave.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("leave %s: %w", group, err)
	}
	for _, m := range lresp.Members {
		if m.ErrorCode != 0 {
			return 0, fmt.Errorf("leave %s member %s: error code %d", group, m.MemberID, m.ErrorCode)
		}
	}
	return len(leave.Members), nil
}

// waitSoleMember waits until group is stable with one member, which owns
// partitions: the dead member is gone and the survivor has its share.
func waitSoleMember(t *testing.T, brokers []string, group string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		members, state, err := groupMembers(context.Background(), brokers, group)
		if err == nil && state == "Stable" && len(members) == 1 {
			for _, ps := range members {
				if len(ps) > 0 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s after %v: state %q, members %v, err %v; want the survivor alone", group, within, state, members, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFaultSweepersAndPayers races payers against two sweepers at the pay-by
// deadlines: a sale with pay_within_s 1 (2 in the long version), every
// shopper paying at its deadline give or take 300 ms through one of two API
// nodes, every fourth paying twice at once through both (same payment
// reference), and two sweeper processes expiring what is due every 50 ms.
// Every order must end in exactly one terminal state, a payment answered
// 200 must be paid in the log, and the audit must be clean.
func TestFaultSweepersAndPayers(t *testing.T) {
	users := pick(300, 2000)
	payWithin := pick(1, 2)
	d := newDeployment(t, testenv.RedisServer(t).URL())
	api1, api2 := d.serve("api1", "api"), d.serve("api2", "api")
	d.serve("relay", "relay")
	d.serve("projector", "projector")
	d.serveArgs("sweeper1", "sweeper", "--sweep-interval", "50ms")
	d.serveArgs("sweeper2", "sweeper", "--sweep-interval", "50ms")
	d.sys.base = api1.base
	bases := []string{api1.base, api2.base}
	sale := d.sys.createSale(users, fmt.Sprintf(`,"per_user_limit":1,"pay_within_s":%d`, payWithin))

	b := newShoppers(d, sale, bases, "s", 64)
	p := newPayer(d, 128)
	type payment struct{ first, second answer }
	var (
		mu       sync.Mutex
		payments = map[string]*payment{}
		wg       sync.WaitGroup
	)
	b.buy(nil, 0, users)
	for user, a := range b.final {
		if a.order == "" {
			continue
		}
		payBy, err := time.Parse(time.RFC3339Nano, fmt.Sprint(a.body["pay_by"]))
		if err != nil {
			t.Fatalf("pay_by of %s: %v (%v)", a.order, err, a.body)
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(user, "s"))
		wg.Go(func() {
			time.Sleep(time.Until(payBy.Add(time.Duration(rand.IntN(600)-300) * time.Millisecond)))
			pm := &payment{}
			if i%4 == 0 {
				// Two payments of one order at once, through both nodes.
				var both sync.WaitGroup
				both.Go(func() { pm.second = p.pay(bases[(i+1)%2], a.order, user) })
				pm.first = p.pay(bases[i%2], a.order, user)
				both.Wait()
			} else {
				pm.first = p.pay(bases[i%2], a.order, user)
			}
			mu.Lock()
			payments[a.order] = pm
			mu.Unlock()
		})
	}
	wg.Wait()
	// The sweepers expire what was not paid.
	g := d.gate()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, _, err := g.SaleCounters(context.Background(), sale)
		if err != nil {
			t.Fatal(err)
		}
		if c.Paid+c.Expired == int64(len(payments)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %d paid + %d expired of %d orders", c.Paid, c.Expired, len(payments))
		}
	}

	fold, _ := d.judge("two sweepers and payers racing at the deadlines", b.ledger())
	b.matchLog(fold)
	var paid, expired, disagree, wrong int
	for o, pm := range payments {
		st := fold.Orders[o]
		if st == nil {
			continue // judge reported it
		}
		switch st.Status {
		case domain.StatusPaid:
			paid++
		case domain.StatusExpired:
			expired++
		default:
			t.Errorf("order %s ended %q: not exactly one terminal state", o, st.Status)
		}
		for _, a := range []answer{pm.first, pm.second} {
			switch {
			case a.status == 0 && a.err == nil:
				// no second payment
			case a.status == http.StatusOK && st.Status != domain.StatusPaid:
				wrong++
				t.Errorf("order %s: a payment was answered 200 but the order ended %s", o, st.Status)
			case a.code == "expired" && st.Status == domain.StatusPaid:
				// The other payment of the pair won: its node's clock read
				// the time before the deadline, this one's after.
				disagree++
			case a.status != http.StatusOK && a.code != "expired":
				t.Errorf("order %s: payment answered %d %q", o, a.status, a.code)
			}
		}
	}
	if st := fold.Sales[sale]; st == nil || st.PaidQty+st.ExpiredQty != int64(len(payments)) {
		t.Errorf("sale in the log: %+v; want paid + expired = %d", st, len(payments))
	}
	t.Logf("faults: sweepers and payers: %d orders at their deadlines: %d paid, %d expired (each exactly once); %d payments answered 200 for an order that expired; %d answered expired while the other payment of the pair paid it",
		len(payments), paid, expired, wrong, disagree)
}
