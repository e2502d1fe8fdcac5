package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const testSecret = "test-secret-of-at-least-16-bytes"

// system is a whole seckill (`seckill serve --role all`) run in-process on
// real Redis, Postgres and the in-process Kafka broker.
type system struct {
	t       *testing.T
	base    string
	dbURL   string
	env     map[string]string
	stop    context.CancelFunc
	done    chan error
	admin   string // an admin's JWT
	clients sync.Map
	// adminBase is http://addr of the admin listener, where the metrics and
	// the detailed readiness are (never on the API's address).
	adminBase string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startSystem starts the system; env holds extra environment variables as
// name/value pairs (e.g. "SECKILL_DEV_SIGN_IN", "true").
func startSystem(t *testing.T, env ...string) *system {
	t.Helper()
	rdb := testenv.Redis(t)
	s := &system{t: t, dbURL: testenv.Postgres(t)}
	s.env = map[string]string{
		"SECKILL_REDIS_URL":     "redis://" + rdb.Options().Addr + "/0",
		"SECKILL_DATABASE_URL":  s.dbURL,
		"SECKILL_KAFKA_BROKERS": strings.Join(testenv.Kafka(t, 8), ","),
		"SECKILL_JWT_SECRET":    testSecret,
		"SECKILL_DATA":          t.TempDir(),
		"SECKILL_ADMIN_ADDR":    freeAddr(t),
	}
	for i := 0; i+1 < len(env); i += 2 {
		s.env[env[i]] = env[i+1]
	}
	s.adminBase = "http://" + s.env["SECKILL_ADMIN_ADDR"]
	s.start()
	t.Cleanup(s.shutdown)
	var err error
	if s.admin, err = shttp.NewToken([]byte(testSecret), "admin", true, time.Hour); err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs `seckill serve` on a fresh port and waits until it is ready.
func (s *system) start() {
	t := s.t
	addr := freeAddr(t)
	s.base = "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan error, 1)
	go func() {
		s.done <- run(ctx, []string{"serve", "--addr", addr, "--partitions", "8", "--sweep-interval", "100ms"},
			func(k string) string { return s.env[k] }, io.Discard, testWriter{t})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("seckill serve exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("seckill serve not ready after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *system) shutdown() {
	if s.stop == nil {
		return
	}
	s.stop()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("seckill serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		s.t.Errorf("seckill serve did not stop within 30s")
	}
	s.stop = nil
}

// metrics returns what the admin listener's /metrics serves.
func (s *system) metrics() string {
	s.t.Helper()
	return s.doAt(s.adminBase, "GET", "/metrics", "", "").raw
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (s *system) token(user string) string {
	if v, ok := s.clients.Load(user); ok {
		return v.(string)
	}
	tok, err := shttp.NewToken([]byte(testSecret), user, false, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	s.clients.Store(user, tok)
	return tok
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r response) str(k string) string { v, _ := r.body[k].(string); return v }

func (s *system) do(method, path, token, body string, hdr ...string) response {
	s.t.Helper()
	return s.doAt(s.base, method, path, token, body, hdr...)
}

// doAt is do against the node at base (several API nodes serve one system).
func (s *system) doAt(base, method, path, token, body string, hdr ...string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (s *system) createSale(stock int, extra string) string {
	s.t.Helper()
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"name":"Phone","stock":%d,"price_cents":19900,"starts_at":%q,"ends_at":%q%s}`,
		stock, now.Add(-time.Second).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), extra)
	r := s.do("POST", "/v1/sales", s.admin, body)
	if r.status != http.StatusCreated {
		s.t.Fatalf("create sale: %d %s", r.status, r.raw)
	}
	return r.str("id")
}

// waitOrders waits until the orders read model holds want rows for sale.
func (s *system) waitOrders(sale string, want int) *pgxpool.Pool {
	s.t.Helper()
	pool, err := pgxpool.New(context.Background(), s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(pool.Close)
	deadline := time.Now().Add(30 * time.Second)
	var n int
	for time.Now().Before(deadline) {
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM orders WHERE sale_id = $1 AND status <> ''`, sale).Scan(&n); err == nil && n == want {
			return pool
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("orders read model has %d rows for sale %s after 30s, want %d", n, sale, want)
	return nil
}

func TestEndToEndSale(t *testing.T) {
	s := startSystem(t)
	sale := s.createSale(10, "")

	const users = 200
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		codes    = map[string]int{}
		orders   = map[string]string{} // user → order
		wg       sync.WaitGroup
	)
	begin := time.Now()
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("user%03d", i)
			r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token(user), `{"quantity":1}`)
			mu.Lock()
			defer mu.Unlock()
			statuses[r.status]++
			codes[r.errCode()]++
			if r.status == http.StatusAccepted {
				orders[user] = r.str("order_id")
			}
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent purchases in %v: statuses %v, codes %v", users, time.Since(begin), statuses, codes)
	if statuses[http.StatusAccepted] != 10 || statuses[http.StatusConflict] != users-10 || codes["sold_out"] != users-10 {
		t.Fatalf("statuses %v codes %v; want 10×202 and %d×409 sold_out", statuses, codes, users-10)
	}

	// The same user retrying gets the same order, and nothing new is sold.
	for user, order := range orders {
		r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token(user), `{"quantity":1}`)
		if r.status != http.StatusOK || r.str("order_id") != order {
			t.Errorf("retry by %s: %d %s, want 200 with order %s", user, r.status, r.raw, order)
		}
		break
	}

	pool := s.waitOrders(sale, 10)
	var distinctUsers, reserved int
	if err := pool.QueryRow(context.Background(),
		`SELECT count(DISTINCT user_id), count(*) FILTER (WHERE status = 'reserved') FROM orders WHERE sale_id = $1`, sale).
		Scan(&distinctUsers, &reserved); err != nil {
		t.Fatal(err)
	}
	if distinctUsers != 10 || reserved != 10 {
		t.Errorf("read model: %d users, %d reserved; want 10, 10", distinctUsers, reserved)
	}
	for user, order := range orders {
		r := s.do("GET", "/v1/orders/"+order, s.token(user), "")
		if r.status != http.StatusOK || r.str("status") != "reserved" || r.str("user_id") != user {
			t.Errorf("GET order %s as %s: %d %s", order, user, r.status, r.raw)
		}
		if r := s.do("GET", "/v1/orders/"+order, s.token("someone-else"), ""); r.status != http.StatusNotFound {
			t.Errorf("GET order %s as another user: %d, want 404", order, r.status)
		}
		if r := s.do("GET", "/v1/orders/"+order, s.admin, ""); r.status != http.StatusOK {
			t.Errorf("GET order %s as admin: %d", order, r.status)
		}
	}
	// The node that sold the last unit shows the sell-out at once, even
	// from the view it cached when the sale was created (within 0.5 s of
	// it in a fast run).
	r := s.do("GET", "/v1/sales/"+sale, "", "")
	if r.status != http.StatusOK || r.body["remaining"] != float64(0) || r.str("state") != "sold_out" {
		t.Errorf("sale after sell-out: %d %s, want remaining 0, sold_out", r.status, r.raw)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	s := startSystem(t)
	sale := s.createSale(5, "")
	alice := s.token("alice")
	big := `{"quantity":1,"pad":"` + strings.Repeat("x", 20000) + `"}`
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"malformed json", "POST", "/v1/sales/" + sale + "/purchase", alice, `{"quantity":`, 400, "malformed_json"},
		{"unknown field", "POST", "/v1/sales/" + sale + "/purchase", alice, `{"quantity":1,"qty":2}`, 400, "malformed_json"},
		{"wrong type", "POST", "/v1/sales/" + sale + "/purchase", alice, `{"quantity":"one"}`, 400, "malformed_json"},
		{"zero quantity", "POST", "/v1/sales/" + sale + "/purchase", alice, `{"quantity":0}`, 400, "invalid_request"},
		{"no quantity", "POST", "/v1/sales/" + sale + "/purchase", alice, `{}`, 202, ""},
		{"negative quantity", "POST", "/v1/sales/" + sale + "/purchase", s.token("bob"), `{"quantity":-1}`, 400, "invalid_request"},
		{"huge quantity", "POST", "/v1/sales/" + sale + "/purchase", s.token("bob"), `{"quantity":1000000000}`, 400, "invalid_request"},
		{"body too large", "POST", "/v1/sales/" + sale + "/purchase", s.token("bob"), big, 413, "body_too_large"},
		{"unknown sale", "POST", "/v1/sales/nosuchsale/purchase", s.token("bob"), `{}`, 404, "sale_not_found"},
		{"missing token", "POST", "/v1/sales/" + sale + "/purchase", "", `{}`, 401, "unauthenticated"},
		{"invalid token", "POST", "/v1/sales/" + sale + "/purchase", "not.a.jwt", `{}`, 401, "unauthenticated"},
		{"forged token", "POST", "/v1/sales/" + sale + "/purchase", forged(t), `{}`, 401, "unauthenticated"},
		{"user creates sale", "POST", "/v1/sales", alice, `{"name":"x"}`, 403, "forbidden"},
		{"invalid sale", "POST", "/v1/sales", s.admin, `{"name":"","stock":0}`, 400, "invalid_request"},
		{"unknown order", "GET", "/v1/orders/" + sale + "-nosuch", alice, "", 404, "order_not_found"},
		{"unknown route", "GET", "/v1/nope", alice, "", 404, "not_found"},
		{"wrong method", "DELETE", "/v1/sales/" + sale, alice, "", 405, "method_not_allowed"},
	}
	for _, tc := range tests {
		r := s.do(tc.method, tc.path, tc.token, tc.body)
		if r.status != tc.status || r.errCode() != tc.code {
			t.Errorf("%s: %d %q (%s), want %d %q", tc.name, r.status, r.errCode(), r.raw, tc.status, tc.code)
		}
		if tc.status >= 400 && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: error is not JSON: %s", tc.name, r.header.Get("Content-Type"))
		}
	}
	// Only alice's one valid purchase was accepted.
	s.waitOrders(sale, 1)
	// The sale's view may come from a node's cache (GateConfig.SaleCacheTTL,
	// 500 ms) that predates the purchase: wait it out.
	var r response
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r = s.do("GET", "/v1/sales/"+sale, "", ""); r.body["remaining"] == float64(4) {
			break
		}
	}
	if r.body["remaining"] != float64(4) {
		t.Errorf("remaining after bad input = %v, want 4", r.body["remaining"])
	}
}

// forged is a token signed with another secret.
func forged(t *testing.T) string {
	tok, err := shttp.NewToken([]byte("another-secret-of-16-bytes!"), "alice", true, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRestartLosesNothing(t *testing.T) {
	s := startSystem(t)
	sale := s.createSale(30, "")
	buy := func(from, to int) {
		for i := from; i < to; i++ {
			r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token(fmt.Sprintf("r%d", i)), "")
			if r.status != http.StatusAccepted {
				t.Fatalf("purchase %d: %d %s", i, r.status, r.raw)
			}
		}
	}
	buy(0, 10)
	s.shutdown() // relay, projections and API stop; the outbox may hold unforwarded entries
	s.start()
	buy(10, 20)
	s.waitOrders(sale, 20)
}
