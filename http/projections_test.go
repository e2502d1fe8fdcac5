package http

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
)

// testMonitor is a Monitor of no projection on a fresh broker: enough to
// route and answer GET /v1/admin/projections.
func testMonitor(t *testing.T) *projections.Monitor {
	t.Helper()
	m, err := projections.NewMonitor(projections.MonitorConfig{Brokers: testenv.Kafka(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// applyEvents writes events through the inventory and daily projections
// into the test API's database, as their consumers would.
func (a *testAPI) applyEvents(t *testing.T, at time.Time, events ...domain.Event) {
	t.Helper()
	var recs []eventstore.Record
	for i, e := range events {
		b, err := domain.Encode(e, at.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, eventstore.Record{Topic: projections.DefaultTopic, Offset: int64(i), Value: b})
	}
	inv, _ := readmodels.NewInventory(readmodels.InventoryConfig{}, a.pool)
	daily, _ := readmodels.NewDaily(readmodels.DailyConfig{}, a.pool)
	for _, p := range []projections.Projection{inv, daily} {
		ap, err := projections.NewApplier(projections.ApplierConfig{}, a.pool, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ap.Apply(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
}

func saleEvents() []domain.Event {
	start := time.Date(2025, 11, 11, 20, 0, 0, 0, time.UTC)
	return []domain.Event{
		domain.SaleCreated{SaleID: "s1", SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
			Name: "Phone", Stock: 10, PriceCents: 500, Currency: "EUR", StartsAt: start,
			EndsAt: start.Add(time.Hour), PerUserLimit: 2, PayWithinS: 900,
		}}},
		domain.StockReserved{SaleID: "s1", OrderID: "s1-a", UserID: "alice", Quantity: 2},
		domain.OrderPlaced{OrderID: "s1-a", SaleID: "s1", UserID: "alice", Quantity: 2, PriceCents: 500, AmountCents: 1000, PayBy: start.Add(15 * time.Minute)},
		domain.StockReserved{SaleID: "s1", OrderID: "s1-b", UserID: "bob", Quantity: 1},
		domain.OrderPlaced{OrderID: "s1-b", SaleID: "s1", UserID: "bob", Quantity: 1, PriceCents: 500, AmountCents: 500, PayBy: start.Add(15 * time.Minute)},
		domain.OrderPaid{OrderID: "s1-a", SaleID: "s1", UserID: "alice", Quantity: 2, AmountCents: 1000, PaymentRef: "p1"},
		domain.OrderExpired{OrderID: "s1-b", SaleID: "s1", UserID: "bob", Quantity: 1},
		domain.StockReleased{SaleID: "s1", OrderID: "s1-b", Quantity: 1, ToPool: true},
	}
}

func TestInventoryEndpoint(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t, nil)
	api.applyEvents(t, time.Date(2025, 11, 11, 20, 0, 0, 0, time.UTC), saleEvents()...)
	admin := bearer(t, "root", true)

	w := api.call(t, "GET", "/v1/sales/s1/inventory", "", "Authorization", admin)
	if w.Code != http.StatusOK {
		t.Fatalf("GET inventory: %d %s", w.Code, w.Body)
	}
	var got readmodels.InventoryView
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	// 10 units: 2 paid, 1 reserved then expired and back in the pool.
	if got.Initial != 10 || got.Reserved != 0 || got.Paid != 2 || got.Released != 1 || got.Available != 8 {
		t.Fatalf("inventory %+v", got)
	}
	if w := api.call(t, "GET", "/v1/sales/s1/inventory", "", "Authorization", bearer(t, "alice", false)); w.Code != http.StatusForbidden {
		t.Errorf("as a user: %d, want 403", w.Code)
	}
	w = api.call(t, "GET", "/v1/sales/nope/inventory", "", "Authorization", admin)
	if w.Code != http.StatusNotFound || errCodeOf(t, w) != "sale_not_found" {
		t.Errorf("unknown sale: %d %s", w.Code, w.Body)
	}
}

func TestDailyReportEndpoint(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t, nil)
	api.applyEvents(t, time.Date(2025, 11, 11, 23, 59, 59, 995500000, time.UTC), saleEvents()...)
	admin := bearer(t, "root", true)

	w := api.call(t, "GET", "/v1/reports/daily?from=2025-11-11&to=2025-11-12", "", "Authorization", admin)
	if w.Code != http.StatusOK {
		t.Fatalf("GET report: %d %s", w.Code, w.Body)
	}
	var body struct {
		From     string                `json:"from"`
		To       string                `json:"to"`
		TimeZone string                `json:"time_zone"`
		Rows     []readmodels.DailyRow `json:"rows"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	// Events are 1 ms apart from 23:59:59.9955: the orders are placed on the
	// 11th, paid and expired on the 12th.
	want := []readmodels.DailyRow{
		{Day: "2025-11-11", SaleID: "s1", SaleName: "Phone", Currency: "EUR", Placed: 2, Buyers: 2},
		{Day: "2025-11-12", SaleID: "s1", SaleName: "Phone", Currency: "EUR", Paid: 1, Expired: 1, RevenueCents: 1000},
	}
	if len(body.Rows) != len(want) || body.Rows[0] != want[0] || body.Rows[1] != want[1] || body.TimeZone != "UTC" {
		t.Fatalf("report %+v,\nwant rows %+v", body, want)
	}

	w = api.call(t, "GET", "/v1/reports/daily?from=2025-11-11&to=2025-11-12", "", "Authorization", admin, "Accept", "text/csv")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	recs, err := csv.NewReader(w.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || strings.Join(recs[0], ",") != "day,sale_id,sale_name,currency,placed,paid,expired,revenue_cents,buyers" ||
		strings.Join(recs[2], ",") != "2025-11-12,s1,Phone,EUR,0,1,1,1000,0" {
		t.Fatalf("CSV %q", recs)
	}

	for _, c := range []struct{ query, field string }{
		{"from=11/11/2025", "from"},
		{"to=tomorrow", "to"},
		{"from=2025-11-12&to=2025-11-11", "from"},
		{"from=2020-01-01&to=2025-01-01", "to"},
	} {
		w := api.call(t, "GET", "/v1/reports/daily?"+c.query, "", "Authorization", admin)
		var e struct {
			Error struct{ Code, Field string } `json:"error"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != http.StatusBadRequest || e.Error.Code != "invalid_request" || e.Error.Field != c.field {
			t.Errorf("%s: %d %s, want 400 invalid_request on %s", c.query, w.Code, w.Body, c.field)
		}
	}
	// Without dates: the last seven days, which hold nothing here.
	w = api.call(t, "GET", "/v1/reports/daily", "", "Authorization", admin)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"rows":[]`) {
		t.Errorf("default range: %d %s", w.Code, w.Body)
	}
	if w := api.call(t, "GET", "/v1/reports/daily", "", "Authorization", bearer(t, "alice", false)); w.Code != http.StatusForbidden {
		t.Errorf("as a user: %d, want 403", w.Code)
	}
}

func TestProjectionStatusEndpoint(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t, 2)
	var api *testAPI
	var m *projections.Monitor
	api = newTestAPI(t, func(c *Config) {
		// The monitor needs the read models' pool, which newTestAPI makes:
		// it is built lazily below, through a wrapper.
		c.Projections = statusFunc(func(ctx context.Context) ([]projections.ProjectionStatus, error) { return m.Status(ctx) })
	})
	var err error
	m, err = projections.NewMonitor(projections.MonitorConfig{Brokers: brokers},
		projections.Target{Name: readmodels.NameInventory, Pool: api.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	w := api.call(t, "GET", "/v1/admin/projections", "", "Authorization", bearer(t, "root", true))
	if w.Code != http.StatusOK {
		t.Fatalf("GET projections: %d %s", w.Code, w.Body)
	}
	var body struct {
		Projections []projections.ProjectionStatus `json:"projections"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Projections) != 1 || body.Projections[0].Projection != readmodels.NameInventory ||
		body.Projections[0].State != projections.StateCaughtUp || len(body.Projections[0].Partitions) != 2 {
		t.Fatalf("status %s", w.Body)
	}
}

type statusFunc func(ctx context.Context) ([]projections.ProjectionStatus, error)

func (f statusFunc) Status(ctx context.Context) ([]projections.ProjectionStatus, error) {
	return f(ctx)
}
