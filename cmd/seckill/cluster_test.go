package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/internal/testenv"
)

// buyout has users buy one unit each of sale at once through the API nodes
// at bases (round-robin) and returns the status counts, the error codes and
// the orders accepted (user → order). User i buys through bases[i%len(bases)].
func buyout(t *testing.T, s *system, bases []string, sale string, users int, userPrefix string) (map[int]int, map[string]int, map[string]string) {
	t.Helper()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		codes    = map[string]int{}
		orders   = map[string]string{}
		wg       sync.WaitGroup
	)
	for i := range users {
		wg.Go(func() {
			user := fmt.Sprintf("%s%04d", userPrefix, i)
			r := s.doAt(bases[i%len(bases)], "POST", "/v1/sales/"+sale+"/purchase", s.token(user), `{"quantity":1}`)
			mu.Lock()
			defer mu.Unlock()
			statuses[r.status]++
			codes[r.errCode()]++
			if r.status == http.StatusAccepted {
				orders[user] = r.str("order_id")
			}
		})
	}
	wg.Wait()
	return statuses, codes, orders
}

// TestEndToEndSaleOnRedisCluster runs the whole system on a real Redis
// Cluster of 3 masters: sales spread over the masters, and every gate script
// (create, purchase, pay, expire, end), the relay's lease/ack scripts, the
// notifications, the blacklist's cross-slot pipeline and the audit's scan
// of every master run there. A script whose keys crossed slots would fail
// with CROSSSLOT.
func TestEndToEndSaleOnRedisCluster(t *testing.T) {
	addrs := testenv.RedisCluster(t, 3)
	url := "redis+cluster://" + strings.Join(addrs, ",")
	s := startSystem(t, "SECKILL_REDIS_URL", url)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()

	// The hot sale: 200 shoppers at once for 10 units.
	hot := s.createSale(10, "")
	statuses, codes, _ := buyout(t, s, []string{s.base}, hot, 200, "user")
	if statuses[http.StatusAccepted] != 10 || statuses[http.StatusConflict] != 190 || codes["sold_out"] != 190 {
		t.Fatalf("hot sale: statuses %v codes %v; want 10×202 and 190×409 sold_out", statuses, codes)
	}
	pool := s.waitOrders(hot, 10)
	var distinct int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT order_id) FROM orders WHERE sale_id = $1 AND status = 'reserved'`, hot).Scan(&distinct); err != nil || distinct != 10 {
		t.Fatalf("read model: %d reserved orders (%v), want 10", distinct, err)
	}

	// More sales until every master holds one; each sells one unit that is
	// paid, and one that expires.
	owner := map[string]string{} // sale → master
	masters := map[string]bool{}
	for i := 0; len(masters) < 3; i++ {
		if i == 30 {
			t.Fatalf("30 sales landed on %d masters only", len(masters))
		}
		id := s.createSale(5, `,"pay_within_s":1`)
		node, err := cc.MasterForKey(ctx, "seckill:{sale:"+id+"}:sale")
		if err != nil {
			t.Fatal(err)
		}
		owner[id] = node.Options().Addr
		masters[owner[id]] = true
	}
	t.Logf("%d sales over masters %v", len(owner), masters)
	for sale := range owner {
		paid := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token("payer"), `{}`)
		lapsed := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token("idler"), `{}`)
		if paid.status != http.StatusAccepted || lapsed.status != http.StatusAccepted {
			t.Fatalf("sale %s on %s: purchases %d %s / %d %s", sale, owner[sale], paid.status, paid.raw, lapsed.status, lapsed.raw)
		}
		if r := s.do("POST", "/v1/orders/"+paid.str("order_id")+"/pay", s.token("payer"), `{"payment_ref":"p-`+sale+`"}`); r.status != http.StatusOK {
			t.Fatalf("pay in sale %s: %d %s", sale, r.status, r.raw)
		}
	}
	// The blacklist writes every sale's copy in one pipeline across slots.
	if r := s.do("POST", "/v1/admin/blacklist", s.admin, `{"user_id":"mallory"}`); r.status != http.StatusOK {
		t.Fatalf("block: %d %s", r.status, r.raw)
	}
	for sale := range owner {
		if r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token("mallory"), `{}`); r.errCode() != "blocked" {
			t.Errorf("mallory in sale %s: %d %s, want blocked", sale, r.status, r.raw)
		}
	}
	// The sweeper expires the unpaid orders (pay_within_s 1): expire.lua.
	deadline := time.Now().Add(20 * time.Second)
	for sale := range owner {
		for {
			r := s.do("GET", "/v1/sales/"+sale, "", "")
			if r.body["remaining"] == float64(4) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sale %s: remaining %v after expiry, want 4", sale, r.body["remaining"])
			}
			time.Sleep(100 * time.Millisecond)
		}
		// end_sale.lua
		if r := s.do("POST", "/v1/sales/"+sale+"/end", s.admin, ""); r.status != http.StatusOK || r.body["unsold"] != float64(4) {
			t.Fatalf("end sale %s: %d %s", sale, r.status, r.raw)
		}
	}

	// The audit folds the log and checks the gate (scanning every master)
	// and the read models against it.
	var out bytes.Buffer
	env := func(k string) string {
		if k == "SECKILL_DATA" {
			return t.TempDir()
		}
		return s.env[k]
	}
	if err := run(ctx, []string{"audit", "--wait", "30s"}, env, &out, testWriter{t}); err != nil {
		t.Fatalf("audit on the cluster: %v\n%s", err, out.String())
	}
	t.Logf("audit:\n%s", out.String())

	// Seed 001 on a cluster: the master holding the hot sale loses its data
	// (the other masters keep theirs). The log restores it, and the audit
	// finds the gate equal to the log again.
	lost, err := cc.MasterForKey(ctx, "seckill:{sale:"+hot+"}:sale")
	if err != nil {
		t.Fatal(err)
	}
	if err := lost.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// The operator restores the sales that master held.
	gone := []string{hot}
	for sale, addr := range owner {
		if addr == lost.Options().Addr {
			gone = append(gone, sale)
		}
	}
	out.Reset()
	if err := run(ctx, []string{"gate", "restore", "--sale", strings.Join(gone, ",")}, env, &out, testWriter{t}); err != nil {
		t.Fatalf("gate restore on the cluster: %v\n%s", err, out.String())
	}
	t.Logf("restore after flushing %s:\n%s", lost.Options().Addr, out.String())
	if r := s.do("GET", "/v1/sales/"+hot, "", ""); r.status != http.StatusOK {
		t.Errorf("hot sale after restore: %d %s", r.status, r.raw)
	}
	out.Reset()
	if err := run(ctx, []string{"audit", "--wait", "30s"}, env, &out, testWriter{t}); err != nil {
		t.Fatalf("audit after restore: %v\n%s", err, out.String())
	}

	m := s.metrics()
	for _, want := range []string{
		`seckill_gate_decisions_total{command="purchase",reason="sold_out"} 190`,
		`seckill_gate_decisions_total{command="purchase",reason="blocked"}`,
		`seckill_redis_command_duration_seconds_count{command="evalsha"}`,
		`seckill_kafka_publish_duration_seconds_count{outcome="ok"}`,
		`seckill_outbox_scrape_ok 1`,
		`seckill_http_requests_total{code="sold_out",method="POST",route="/v1/sales/{id}/purchase",status="4xx"} 190`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
