package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/internal/testenv"
)

// TestReadModelsEndToEnd runs the whole system with the daily projection in
// a database of its own and a business day in Shanghai: the inventory, the
// daily report (JSON and CSV), the projections' status (API, metrics, CLI)
// and a rebuild of each projection, through the binary's own entry point.
func TestReadModelsEndToEnd(t *testing.T) {
	t.Parallel()
	dailyURL := testenv.Postgres(t)
	s := startSystem(t, "SECKILL_DAILY_DATABASE_URL", dailyURL, "SECKILL_DAILY_TIMEZONE", "Asia/Shanghai")
	sale := s.createSale(5, `,"per_user_limit":1,"pay_within_s":900`)
	var orders []string
	for _, u := range []string{"ann", "ben", "cat"} {
		r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token(u), `{"quantity":1}`)
		if r.status != http.StatusAccepted {
			t.Fatalf("purchase by %s: %d %s", u, r.status, r.raw)
		}
		orders = append(orders, r.str("order_id"))
	}
	if r := s.do("POST", "/v1/orders/"+orders[0]+"/pay", s.token("ann"), `{"payment_ref":"p-1"}`); r.status != http.StatusOK {
		t.Fatalf("pay: %d %s", r.status, r.raw)
	}

	// The inventory: 5 units, 1 paid, 2 reserved, 2 available.
	eventually(t, "inventory", func() string {
		r := s.do("GET", "/v1/sales/"+sale+"/inventory", s.admin, "")
		if r.status == http.StatusOK && r.body["initial"] == 5.0 && r.body["paid"] == 1.0 && r.body["reserved"] == 2.0 &&
			r.body["available"] == 2.0 && r.body["released"] == 0.0 {
			return ""
		}
		return fmt.Sprintf("%d %s", r.status, r.raw)
	})
	// The daily report, on today's business day in Shanghai.
	today := time.Now().In(mustLoad(t, "Asia/Shanghai")).Format(time.DateOnly)
	q := "/v1/reports/daily?from=" + today + "&to=" + today
	eventually(t, "daily report", func() string {
		r := s.do("GET", q, s.admin, "")
		if r.status == http.StatusOK && strings.Contains(r.raw, `"sale_id":"`+sale+`"`) && strings.Contains(r.raw, `"placed":3,"paid":1,"expired":0,"revenue_cents":19900,"buyers":3`) &&
			r.str("time_zone") == "Asia/Shanghai" {
			return ""
		}
		return fmt.Sprintf("%d %s", r.status, r.raw)
	})
	csv := s.do("GET", q, s.admin, "", "Accept", "text/csv")
	if !strings.HasPrefix(csv.header.Get("Content-Type"), "text/csv") || !strings.Contains(csv.raw, today+","+sale+",Phone,") {
		t.Fatalf("CSV report: %s %q", csv.header.Get("Content-Type"), csv.raw)
	}
	// The daily rows are in the daily database, not the main one.
	ctx := context.Background()
	for db, want := range map[string]int{dailyURL: 3, s.dbURL: 0} {
		pool, err := pgxpool.New(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = pool.QueryRow(ctx, `SELECT count(*) FROM daily_orders WHERE item_id = $1`, sale).Scan(&n)
		pool.Close()
		if err != nil || n != want {
			t.Fatalf("daily_orders in %s: %d rows (err %v), want %d", db, n, err, want)
		}
	}

	// Status: the API, the metrics and the CLI agree that all is applied.
	eventually(t, "projection status", func() string {
		r := s.do("GET", "/v1/admin/projections", s.admin, "")
		var body struct {
			Projections []struct {
				Projection string
				State      string
				LagEvents  int64 `json:"lag_events"`
				Runner     *struct{ State string }
			}
		}
		_ = json.Unmarshal([]byte(r.raw), &body)
		if len(body.Projections) != 3 {
			return r.raw
		}
		for _, p := range body.Projections {
			if p.LagEvents != 0 || p.Runner == nil || p.Runner.State != "running" {
				return r.raw
			}
		}
		return ""
	})
	m := s.metrics()
	for _, want := range []string{`seckill_projection_lag_events{projection="daily"} 0`, `seckill_projection_events_total{outcome="applied",projection="orders"}`,
		`seckill_projection_event_lag_seconds_bucket`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	out := s.mustCLI(t, "projections", "status")
	if !strings.Contains(out, "orders") || !strings.Contains(out, "caught_up") {
		t.Fatalf("projections status:\n%s", out)
	}

	// Rebuild each projection while the system runs; everything stays.
	for _, name := range []string{"orders", "inventory", "daily"} {
		out := s.mustCLI(t, "projections", "rebuild", name)
		if !strings.Contains(out, "rebuilt "+name) || !strings.Contains(out, "swapped in") {
			t.Fatalf("rebuild %s:\n%s", name, out)
		}
	}
	if r := s.do("GET", "/v1/orders/"+orders[0], s.token("ann"), ""); r.status != http.StatusOK || r.str("status") != "paid" || r.str("source") != "read_model" {
		t.Fatalf("order after the rebuild: %d %s", r.status, r.raw)
	}
	if r := s.do("GET", "/v1/sales/"+sale+"/inventory", s.admin, ""); r.body["paid"] != 1.0 || r.body["reserved"] != 2.0 {
		t.Fatalf("inventory after the rebuild: %s", r.raw)
	}
	if r := s.do("GET", q, s.admin, ""); !strings.Contains(r.raw, `"placed":3,"paid":1`) {
		t.Fatalf("report after the rebuild: %s", r.raw)
	}
	// And the live projections continue after the swap.
	if r := s.do("POST", "/v1/orders/"+orders[1]+"/pay", s.token("ben"), `{"payment_ref":"p-2"}`); r.status != http.StatusOK {
		t.Fatalf("pay: %d %s", r.status, r.raw)
	}
	eventually(t, "inventory after the rebuild", func() string {
		r := s.do("GET", "/v1/sales/"+sale+"/inventory", s.admin, "")
		if r.body["paid"] == 2.0 && r.body["reserved"] == 1.0 {
			return ""
		}
		return r.raw
	})
}

// mustCLI runs a seckill command against the system and returns its output.
func (s *system) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := s.cli(args...)
	if err != nil {
		t.Fatalf("seckill %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// eventually retries check (which returns "" when satisfied, or what it saw)
// for up to 30 s.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := check()
		if got == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not as expected after 30s: %s", what, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
