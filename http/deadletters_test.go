package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
)

// togglePoison rejects every event for good while on.
type togglePoison struct {
	projections.Projection
	on atomic.Bool
}

func (p *togglePoison) Apply(ctx context.Context, tx pgx.Tx, batch []projections.Event) error {
	if p.on.Load() {
		return fmt.Errorf("%w: rejected", projections.ErrPoison)
	}
	return p.Projection.Apply(ctx, tx, batch)
}

// TestDeadLettersAPI: list, show, retry (failing, then after the fix),
// a second retry refused, unknown letters and non-admins refused.
func TestDeadLettersAPI(t *testing.T) {
	var proj *togglePoison
	var set projections.DeadLetterSet
	// The set is filled once the test API's database exists.
	a := newTestAPI(t, func(c *Config) { c.DeadLetters = setRef{&set} })
	orders, err := readmodels.NewOrders(readmodels.OrdersConfig{}, a.pool)
	if err != nil {
		t.Fatal(err)
	}
	proj = &togglePoison{Projection: orders}
	proj.on.Store(true)
	dl, err := projections.NewDeadLetters(a.pool, proj, "")
	if err != nil {
		t.Fatal(err)
	}
	set = projections.DeadLetterSet{dl}
	at := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	var recs []eventstore.Record
	for i, ev := range []domain.Event{
		domain.StockReserved{SaleID: "s", OrderID: "s-a", UserID: "u", Quantity: 1},
		domain.OrderPlaced{OrderID: "s-a", SaleID: "s", UserID: "u", Quantity: 1, PriceCents: 1, AmountCents: 1, PayBy: at},
	} {
		b, err := domain.Encode(ev, at)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, eventstore.Record{Topic: "t", Partition: 0, Offset: int64(i), Key: []byte("s-a"), Value: b})
	}
	app, err := projections.NewApplier(projections.ApplierConfig{}, a.pool, proj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Apply(context.Background(), recs); err != nil {
		t.Fatal(err)
	}

	admin := bearer(t, "admin", true)
	var list struct {
		DeadLetters []projections.Letter `json:"dead_letters"`
	}
	w := a.call(t, "GET", "/v1/admin/deadletters?status=open", "", "Authorization", admin)
	if err := json.Unmarshal(w.Body.Bytes(), &list); w.Code != http.StatusOK || err != nil || len(list.DeadLetters) != 2 ||
		list.DeadLetters[0].Status != projections.StatusParked || list.DeadLetters[1].Status != projections.StatusHeld {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	first := "/v1/admin/deadletters/orders/" + strconv.FormatInt(list.DeadLetters[0].ID, 10)
	if w := a.call(t, "GET", first, "", "Authorization", admin); w.Code != http.StatusOK {
		t.Errorf("show: %d %s", w.Code, w.Body)
	}
	var res projections.RetryResult
	w = a.call(t, "POST", first+"/retry", "", "Authorization", admin)
	if err := json.Unmarshal(w.Body.Bytes(), &res); w.Code != http.StatusOK || err != nil || res.Parked == 0 || res.Held != 1 {
		t.Fatalf("retry before the fix: %d %s", w.Code, w.Body)
	}
	proj.on.Store(false)
	res = projections.RetryResult{}
	w = a.call(t, "POST", first+"/retry", "", "Authorization", admin)
	if err := json.Unmarshal(w.Body.Bytes(), &res); w.Code != http.StatusOK || err != nil || res.Parked != 0 || len(res.Applied) != 2 {
		t.Fatalf("retry after the fix: %d %s", w.Code, w.Body)
	}
	for _, tc := range []struct {
		method, path, auth string
		status             int
		code               string
	}{
		{"POST", first + "/retry", admin, http.StatusConflict, "letter_closed"},
		{"GET", "/v1/admin/deadletters/orders/999999", admin, http.StatusNotFound, "not_found"},
		{"GET", "/v1/admin/deadletters/nope/1", admin, http.StatusNotFound, "not_found"},
		{"GET", "/v1/admin/deadletters/orders/x", admin, http.StatusBadRequest, "invalid_request"},
		{"GET", "/v1/admin/deadletters?status=weird", admin, http.StatusBadRequest, "invalid_request"},
		{"GET", "/v1/admin/deadletters", bearer(t, "alice", false), http.StatusForbidden, ""},
	} {
		w := a.call(t, tc.method, tc.path, "", "Authorization", tc.auth)
		if w.Code != tc.status || tc.code != "" && errCodeOf(t, w) != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, w.Code, w.Body, tc.status, tc.code)
		}
	}
}

// setRef reads the set through a pointer, so it can be filled after the
// router is built.
type setRef struct{ s *projections.DeadLetterSet }

func (r setRef) List(ctx context.Context, p, st string, n int) ([]projections.Letter, error) {
	return r.s.List(ctx, p, st, n)
}
func (r setRef) Get(ctx context.Context, p string, id int64) (projections.Letter, error) {
	return r.s.Get(ctx, p, id)
}
func (r setRef) Retry(ctx context.Context, p string, id int64) (projections.RetryResult, error) {
	return r.s.Retry(ctx, p, id)
}
func (r setRef) Discard(ctx context.Context, p string, id int64) (projections.RetryResult, error) {
	return r.s.Discard(ctx, p, id)
}
