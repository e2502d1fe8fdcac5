package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// TestHostileInputReproductions holds the reproductions of issue 15 ("hostile
// input never poisons the log, the read models or the answers") that need
// the whole system, one subtest each, on one system: each failed on the main
// of the issue. The others are unit tests: item 6 TestRelayShutdownFlushReleasesLeases
// (eventstore), item 7 TestComposeNeedsSecret, TestServeRefusesWeakSecret,
// TestAdminListener (here) and TestPublicReadyRevealsNothing (http). Items 3
// (pay.lua's write before its overflow) and 5 (unblock racing a sale's
// creation) are the gate's own (commands/); what the API does about item 3
// — no price that can overflow — is here.
func TestHostileInputReproductions(t *testing.T) {
	s := startSystem(t)
	sale := s.createSale(20, "")
	pool := s.pool()

	t.Run("1 payment_ref with NUL", func(t *testing.T) {
		order := s.buy(sale, "nul-payer")
		r := s.do("POST", "/v1/orders/"+order+"/pay", s.token("nul-payer"), `{"payment_ref":"pay\u0000ref"}`)
		wantInvalid(t, "pay with NUL", r, "payment_ref")
		r = s.do("POST", "/v1/orders/"+order+"/pay", s.token("nul-payer"), "{\"payment_ref\":\"pay\xffref\"}")
		if r.status != http.StatusBadRequest || r.errCode() != "malformed_json" {
			t.Errorf("pay with invalid UTF-8: %d %s, want 400 malformed_json", r.status, r.raw)
		}
		// The order was left as it was: payable, and paid it shows in the read model.
		if r := s.do("POST", "/v1/orders/"+order+"/pay", s.token("nul-payer"), `{"payment_ref":"pay-ref"}`); r.status != http.StatusOK {
			t.Fatalf("pay after the refusals: %d %s", r.status, r.raw)
		}
		waitRow(t, pool, `SELECT status || '/' || payment_ref FROM orders WHERE order_id = $1`, order, "paid/pay-ref")
		waitRow(t, pool, `SELECT status || '/' || payment_ref FROM daily_orders WHERE order_no = $1`, order, "paid/pay-ref")
	})

	t.Run("1 sale names with control characters", func(t *testing.T) {
		for _, name := range []string{`Phone\u0000`, `Pho\nne`, `Pho\u0085ne`, `Pho\u001bne`, `\t`} {
			body := fmt.Sprintf(`{"name":"%s","stock":1,"price_cents":1,"starts_at":%q,"ends_at":%q}`,
				name, time.Now().UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
			wantInvalid(t, "sale named "+name, s.do("POST", "/v1/sales", s.admin, body), "name")
		}
		// Text that is odd but valid goes through and reads back the same.
		odd := "秒杀 \u202e📱 \"quoted\" \\ <b>&amp;"
		body := fmt.Sprintf(`{"name":%q,"stock":1,"price_cents":1,"starts_at":%q,"ends_at":%q}`,
			odd, time.Now().UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		r := s.do("POST", "/v1/sales", s.admin, body)
		if r.status != http.StatusCreated || r.str("name") != odd {
			t.Fatalf("sale with an odd but valid name: %d %s", r.status, r.raw)
		}
		waitRow(t, pool, `SELECT name FROM sales WHERE id = $1`, r.str("id"), odd)
	})

	t.Run("2 Idempotency-Key not UTF-8", func(t *testing.T) {
		before := s.remaining(sale)
		for _, key := range []string{"k\xff\xfe", "clé", "k\x01", "k\x7f"} {
			// Raw, because Go's client refuses to send control characters.
			r := s.raw(t, "POST /v1/sales/"+sale+"/purchase HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+s.token("key-user")+
				"\r\nIdempotency-Key: "+key+"\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"quantity\":1}")
			if strings.ContainsAny(key, "\x01\x7f") {
				// net/http refuses a header with control characters
				// itself, before any handler (400, plain text).
				if r.status != http.StatusBadRequest {
					t.Errorf("key %q: %d %s, want 400", key, r.status, r.raw)
				}
				continue
			}
			wantInvalid(t, fmt.Sprintf("key %q", key), r, "Idempotency-Key")
		}
		if got := s.remaining(sale); got != before {
			t.Errorf("remaining %d after refused keys, want %d: a refusal wrote", got, before)
		}
	})

	t.Run("3 price that overflows price × quantity", func(t *testing.T) {
		start, end := time.Now().UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		for _, tc := range []struct{ stock, price string }{
			{"10", "4611686018427387904"},      // 2^62: × 2 wraps int64
			{"10000000", "1000000000"},         // 10^16 in all: past what the gate's Lua numbers hold exactly
			{"1", "9223372036854775807"},       // int64's max
			{"1", "92233720368547758070"},      // past int64
			{"9223372036854775807", "1"},       // stock past every bound
			{"1", "-1"},                        // negative
			{"100", "1e3"},                     // not an integer
			{"100", "100.5"},                   // not an integer
			{"100", "\"100\""},                 // not a number
			{"100", "null, \"price_cents\":1"}, // twice
		} {
			body := fmt.Sprintf(`{"name":"n","stock":%s,"price_cents":%s,"per_user_limit":100,"starts_at":%q,"ends_at":%q}`, tc.stock, tc.price, start, end)
			if r := s.do("POST", "/v1/sales", s.admin, body); r.status != http.StatusBadRequest {
				t.Errorf("stock %s price %s: %d %s, want 400", tc.stock, tc.price, r.status, r.raw)
			}
		}
		// The largest price that is allowed buys the largest quantity, and
		// pays, and every projection applies it (checked at the end).
		body := fmt.Sprintf(`{"name":"dear","stock":100,"price_cents":90071992547409,"per_user_limit":100,"starts_at":%q,"ends_at":%q}`, start, end)
		r := s.do("POST", "/v1/sales", s.admin, body)
		if r.status != http.StatusCreated {
			t.Fatalf("sale at the bound: %d %s", r.status, r.raw)
		}
		p := s.do("POST", "/v1/sales/"+r.str("id")+"/purchase", s.token("rich"), `{"quantity":100}`)
		if p.status != http.StatusAccepted {
			t.Fatalf("buy 100 at the bound: %d %s", p.status, p.raw)
		}
		if r := s.do("POST", "/v1/orders/"+p.str("order_id")+"/pay", s.token("rich"), `{"payment_ref":"rich-1"}`); r.status != http.StatusOK {
			t.Fatalf("pay at the bound: %d %s", r.status, r.raw)
		}
		waitRow(t, pool, `SELECT amount_cents::text FROM orders WHERE order_id = $1 AND status = 'paid'`, p.str("order_id"), "9007199254740900")
	})

	t.Run("4 malformed ids and quantity 0", func(t *testing.T) {
		user, admin := s.token("id-user"), s.admin
		for _, tc := range []struct {
			method, path, token, body string
			status                    int
			code                      string
		}{
			{"GET", "/v1/orders/%FF", user, "", 404, "order_not_found"},
			{"GET", "/v1/orders/%00", user, "", 404, "order_not_found"},
			{"GET", "/v1/orders/" + strings.Repeat("a", 65) + "-b", user, "", 404, "order_not_found"},
			{"GET", "/v1/orders/a%20b-c", user, "", 404, "order_not_found"},
			{"POST", "/v1/orders/%FF/pay", user, `{"payment_ref":"p"}`, 404, "order_not_found"},
			{"GET", "/v1/sales/%FF", "", "", 404, "sale_not_found"},
			{"GET", "/v1/sales/%FF/inventory", admin, "", 404, "sale_not_found"},
			{"GET", "/v1/sales/%C3%A9/inventory", admin, "", 404, "sale_not_found"},
			{"GET", "/v1/sales/%FF/token", user, "", 404, "sale_not_found"},
			{"POST", "/v1/sales/%FF/purchase", user, `{"quantity":1}`, 404, "sale_not_found"},
			{"POST", "/v1/sales/%FF/end", admin, "", 404, "sale_not_found"},
			{"DELETE", "/v1/admin/blacklist/%FF", admin, "", 400, "invalid_request"},
			{"POST", "/v1/admin/blacklist", admin, `{"user_id":"a\u0000"}`, 400, "invalid_request"},
			{"GET", "/v1/users/me/orders?limit=99999999999999999999", user, "", 400, "invalid_request"},
			{"GET", "/v1/reports/daily?from=%FF", admin, "", 400, "invalid_request"},
			{"POST", "/v1/sales/" + sale + "/purchase", user, `{"quantity":0}`, 400, "invalid_request"},
			{"POST", "/v1/sales/" + sale + "/purchase", user, `{"quantity":1}}`, 400, "malformed_json"},
			{"POST", "/v1/sales/" + sale + "/purchase", user, `{"quantity":1,"quantity":100}`, 400, "malformed_json"},
			{"POST", "/v1/sales/" + sale + "/purchase", user, `null`, 400, "malformed_json"},
		} {
			r := s.do(tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.status || r.errCode() != tc.code || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("%s %s %s: %d %q %s, want %d %q with a JSON body", tc.method, tc.path, tc.body, r.status, r.errCode(), r.raw, tc.status, tc.code)
			}
		}
	})

	// What every subtest's accepted requests wrote is applied by every
	// projection, and nothing a refusal wrote is anywhere.
	t.Run("log, read models and gate agree", func(t *testing.T) {
		if n := deadLetters(t, pool); n != 0 {
			t.Errorf("%d dead letters", n)
		}
		if out, errOut, err := s.cli("audit", "--wait", "30s"); err != nil {
			t.Errorf("audit: %v\n%s%s", err, out, errOut)
		}
	})

	// Item 6, as a deployment sees it: after a clean shutdown no relay lease
	// is left behind for a peer relay to wait out.
	t.Run("6 clean shutdown leaves no relay lease", func(t *testing.T) {
		s.shutdown()
		rdb := s.redis()
		leases, err := rdb.Keys(context.Background(), "*:lease").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(leases) != 0 {
			t.Errorf("after a clean shutdown %d relay leases remain: %v", len(leases), leases)
		}
	})
}

// TestServeRefusesWeakSecret (issue 15, item 7): a node that would verify
// tokens with a secret anyone can guess does not start.
func TestServeRefusesWeakSecret(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{"change-me-to-a-long-random-secret", "short-secret", strings.Repeat("x", 40)} {
		env := map[string]string{
			"SECKILL_REDIS_URL": "redis://127.0.0.1:1/0", "SECKILL_DATABASE_URL": "postgres://127.0.0.1:1/x",
			"SECKILL_KAFKA_BROKERS": "127.0.0.1:1", "SECKILL_JWT_SECRET": secret, "SECKILL_DATA": t.TempDir(),
		}
		var out strings.Builder
		err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "jwt secret") {
			t.Errorf("serve with secret %q: %v, want a refusal naming the jwt secret", secret, err)
		}
	}
}

// raw sends req as it is on a connection of its own and reads the answer.
func (s *system) raw(t *testing.T, req string) response {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

// wantInvalid fails unless r is 400 invalid_request naming field.
func wantInvalid(t *testing.T, what string, r response, field string) {
	t.Helper()
	e, _ := r.body["error"].(map[string]any)
	if r.status != http.StatusBadRequest || r.errCode() != "invalid_request" || e["field"] != field {
		t.Errorf("%s: %d %s, want 400 invalid_request naming %s", what, r.status, r.raw, field)
	}
}

// waitRow waits until query (one text column, one $1) answers want.
func waitRow(t *testing.T, pool *pgxpool.Pool, query, arg, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := pool.QueryRow(context.Background(), query, arg).Scan(&got); err == nil && got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%s [%s]: %q after 30s, want %q", query, arg, got, want)
}

// deadLetters counts the records any projection could not apply.
func deadLetters(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM projection_dead_letters`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// pool opens the read models' database, closed at the end of the test.
func (s *system) pool() *pgxpool.Pool {
	s.t.Helper()
	pool, err := pgxpool.New(context.Background(), s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(pool.Close)
	return pool
}

// redis opens the gate's Redis, closed at the end of the test.
func (s *system) redis() *redis.Client {
	s.t.Helper()
	opt, err := redis.ParseURL(s.env["SECKILL_REDIS_URL"])
	if err != nil {
		s.t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	s.t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// remaining is the sale's remaining stock as the API shows it, once the
// node's view of the sale (cached for SaleCacheTTL, 0.5 s) is newer than
// whatever the caller did just before.
func (s *system) remaining(sale string) int64 {
	s.t.Helper()
	time.Sleep(600 * time.Millisecond)
	r := s.do("GET", "/v1/sales/"+sale, "", "")
	v, ok := r.body["remaining"].(float64)
	if r.status != http.StatusOK || !ok {
		s.t.Fatalf("sale %s: %d %s", sale, r.status, r.raw)
	}
	return int64(v)
}
