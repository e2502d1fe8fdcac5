package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestProtectionsEndToEnd runs the protections through `seckill serve` as
// deployed: two API nodes on one Redis, the purchase token keyed by the JWT
// secret, the watcher that tells each node of sell-outs and blocks.
func TestProtectionsEndToEnd(t *testing.T) {
	s := startSystem(t)
	second := s.startAPINode()
	opt, err := redis.ParseURL(s.env["SECKILL_REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	sale := s.createSale(3, `,"require_token":true,"user_interval_ms":60000,"per_user_limit":2`)
	buy := func(base, user, token, key string) response {
		return s.doAt(base, "POST", "/v1/sales/"+sale+"/purchase", s.token(user), `{"quantity":1}`,
			"X-Purchase-Token", token, "Idempotency-Key", key)
	}
	passFor := func(base, user string) string {
		r := s.doAt(base, "GET", "/v1/sales/"+sale+"/token", s.token(user), "")
		if r.status != http.StatusOK || r.str("token") == "" {
			t.Fatalf("token for %s: %d %s", user, r.status, r.raw)
		}
		return r.str("token")
	}

	if r := buy(s.base, "alice", "", "a1"); r.status != http.StatusForbidden || r.errCode() != "token_required" {
		t.Errorf("without a token: %d %s", r.status, r.raw)
	}
	// A token minted by one node works on the other: both derive the key
	// from the JWT secret.
	alice := passFor(second, "alice")
	if r := buy(s.base, "alice", alice, "a1"); r.status != http.StatusAccepted {
		t.Fatalf("with a token: %d %s", r.status, r.raw)
	}
	r := buy(second, "alice", alice, "a2")
	if secs, _ := strconv.Atoi(r.header.Get("Retry-After")); r.status != http.StatusTooManyRequests || r.errCode() != "rate_limited" || secs < 59 || secs > 60 {
		t.Errorf("a second attempt on the other node: %d %s (Retry-After %q), want 429 rate_limited, about 60 s", r.status, r.raw, r.header.Get("Retry-After"))
	}

	// Blocked on one node, refused on the other without Redis.
	if r := s.do("POST", "/v1/admin/blacklist", s.admin, `{"user_id":"mallory"}`); r.status != http.StatusOK {
		t.Fatalf("block: %d %s", r.status, r.raw)
	}
	// The other node hears of the block by pub/sub, a moment later.
	var blocked response
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		blocked = s.doAt(second, "GET", "/v1/sales/"+sale+"/token", s.token("mallory"), "")
		if blocked.status == http.StatusForbidden || time.Now().After(deadline) {
			break
		}
	}
	if blocked.status != http.StatusForbidden || blocked.errCode() != "blocked" {
		t.Errorf("a token for a blocked user on the other node: %d %s", blocked.status, blocked.raw)
	}

	// Sell out through the first node; the second hears of it.
	for _, u := range []string{"bob", "carl"} {
		if r := buy(s.base, u, passFor(s.base, u), ""); r.status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", u, r.status, r.raw)
		}
	}
	users := make([]string, 60)
	passes := make([]string, len(users))
	for i := range users {
		users[i] = fmt.Sprintf("late%02d", i)
		passes[i] = passFor(s.base, users[i])
	}
	// Both nodes answer from memory right before the burst: a node's
	// memory of the sell-out lasts SoldOutTTL (1 s) and the first caller
	// after that asks Redis once to renew it (commands/guard.go), so the
	// first node, which learned of it when the last unit went, is probed
	// too: on a loaded machine the wait for the second can outlast it.
	deadline := time.Now().Add(10 * time.Second)
	probes := map[string]string{s.base: passFor(s.base, "probe"), second: passFor(second, "probe")}
	for {
		before := evalshas(t, rdb)
		var r response
		fromMemory := true
		for _, node := range []string{second, s.base} {
			r = buy(node, "probe", probes[node], "")
			fromMemory = fromMemory && r.errCode() == "sold_out"
		}
		if fromMemory && evalshas(t, rdb) == before {
			break // both nodes answer from memory
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes still ask Redis 10 s after the sell-out (last: %d %s)", r.status, r.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	before, start := evalshas(t, rdb), time.Now()
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			base := []string{s.base, second}[i%2]
			if r := buy(base, users[i], passes[i], ""); r.status != http.StatusConflict || r.errCode() != "sold_out" {
				t.Errorf("%s after the sell-out: %d %s", users[i], r.status, r.raw)
			}
		})
	}
	wg.Wait()
	// Memory lapses at most once per node per SoldOutTTL (1 s), and one
	// caller renews it from Redis (commands/guard.go): a burst that spans
	// L seconds may run at most floor(L)+1 scripts per node, whatever the
	// machine's load; the other requests are answered from memory.
	bound := 2 * (int64(time.Since(start)/time.Second) + 1)
	if got := evalshas(t, rdb) - before; got > bound {
		t.Errorf("%d purchase scripts ran for %d requests after the sell-out, want at most %d (one per node per second)", got, len(users), bound)
	}
	s.waitOrders(sale, 3)
}

func TestAdmissionFlag(t *testing.T) {
	env := map[string]string{
		"SECKILL_REDIS_URL": "redis://127.0.0.1:1/0", "SECKILL_DATABASE_URL": "postgres://x@127.0.0.1:1/x",
		"SECKILL_KAFKA_BROKERS": "127.0.0.1:1", "SECKILL_JWT_SECRET": testSecret, "SECKILL_DATA": t.TempDir(),
		"SECKILL_ADMISSION_RPS": "lots",
	}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "SECKILL_ADMISSION_RPS") {
		t.Errorf("bad SECKILL_ADMISSION_RPS: %v, want a usage error naming it", err)
	}
	err = run(context.Background(), []string{"serve", "--admission-rps", "-1"}, func(k string) string {
		if k == "SECKILL_ADMISSION_RPS" {
			return ""
		}
		return env[k]
	}, io.Discard, io.Discard)
	if !errors.As(err, &ue) {
		t.Errorf("--admission-rps -1: %v, want a usage error", err)
	}
}

// startAPINode runs one more API node (`seckill serve --role api`) on the
// system's services and returns its base URL.
func (s *system) startAPINode() string {
	t := s.t
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// Without the system's admin listener: its address is taken.
		env := func(k string) string {
			if k == "SECKILL_ADMIN_ADDR" {
				return ""
			}
			return s.env[k]
		}
		done <- run(ctx, []string{"serve", "--role", "api", "--addr", addr}, env, io.Discard, testWriter{t})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second API node: %v", err)
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("second API node not ready after 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// evalshas is how many EVALSHA Redis has run: each purchase that reaches
// Redis is one.
func evalshas(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:calls="); ok {
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			return n
		}
	}
	return 0
}
