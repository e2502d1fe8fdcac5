package http

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/migrations"
	"github.com/seckill/seckill/readmodels"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const testSecret = "http-test-secret-of-at-least-32-bytes"

// testAPI is the router on a real gate (Redis) and a real orders read model
// (Postgres), as serve wires it, minus the log.
type testAPI struct {
	h    http.Handler
	gate *commands.Gate
	auth *Authenticator
	pool *pgxpool.Pool // the read models' database
}

func newTestAPI(t *testing.T, mutate func(*Config)) *testAPI {
	t.Helper()
	ctx := context.Background()
	gate, err := commands.NewGate(commands.GateConfig{}, testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	dsn := testenv.Postgres(t)
	if err := migrations.Up(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	orders, err := readmodels.NewOrders(readmodels.OrdersConfig{}, pool)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := NewAuthenticator([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	inventory, err := readmodels.NewInventory(readmodels.InventoryConfig{}, pool)
	if err != nil {
		t.Fatal(err)
	}
	daily, err := readmodels.NewDaily(readmodels.DailyConfig{}, pool)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Gate: gate, Orders: orders, Auth: auth, Sales: orders, Inventory: inventory, Daily: daily, Returns: daily}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testAPI{h: h, gate: gate, auth: auth, pool: pool}
}

// call serves one request in-process; hdr are header name/value pairs.
func (a *testAPI) call(t *testing.T, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, req)
	return w
}

// errCodeOf is the code of a JSON error body, "" if the body is not one.
func errCodeOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error response has Content-Type %q, want JSON", ct)
	}
	var b struct {
		Error struct {
			Code  string `json:"code"`
			Field string `json:"field"`
		} `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &b)
	return b.Error.Code
}
