package readmodels_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
	"github.com/seckill/seckill/readmodels/readmodelstest"
)

func TestOrderQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := readmodelstest.NewPool(t)
	o := readmodelstest.NewOrders(t, pool)
	st := readmodelstest.Gen(t, 31, 3, 40)
	if _, err := readmodelstest.NewApplier(t, pool, o).Apply(ctx, st.Records(topic, 4)); err != nil {
		t.Fatal(err)
	}
	f := readmodelstest.Fold(t, st.Envs)

	// GetOrder answers what the fold says, for every order.
	byUser := map[string][]*domain.OrderState{}
	for id, want := range f.Orders {
		got, err := o.GetOrder(ctx, id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if got.OrderID != id || got.SaleID != want.SaleID || got.UserID != want.UserID || got.Status != want.Status ||
			got.Quantity != want.Quantity || got.AmountCents != want.AmountCents || got.PaymentRef != want.PaymentRef ||
			!got.PayBy.Equal(readmodelstest.US(want.PayBy)) || !got.PlacedAt.Equal(readmodelstest.US(want.PlacedAt)) ||
			!got.PaidAt.Equal(readmodelstest.US(want.PaidAt)) || !got.ExpiredAt.Equal(readmodelstest.US(want.ExpiredAt)) ||
			readmodelstest.HistoryString(got.History) != readmodelstest.HistoryString(want.History) {
			t.Fatalf("order %s:\n got  %+v\n fold %+v", id, got, want)
		}
		byUser[want.UserID] = append(byUser[want.UserID], want)
	}
	if _, err := o.GetOrder(ctx, "sale0-nope"); !errors.Is(err, domain.ErrOrderNotFound) {
		t.Fatalf("missing order: err %v, want ErrOrderNotFound", err)
	}

	// ListUserOrders: all of the user's orders, newest first; limit applies.
	for user, want := range byUser {
		got, err := o.ListUserOrders(ctx, user, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("user %s: %d orders, want %d", user, len(got), len(want))
		}
		if !slices.IsSortedFunc(got, func(a, b readmodels.OrderView) int { return b.PlacedAt.Compare(a.PlacedAt) }) {
			t.Fatalf("user %s: orders not newest first", user)
		}
		if len(want) > 1 {
			if got, _ := o.ListUserOrders(ctx, user, 1); len(got) != 1 {
				t.Fatalf("limit 1: %d orders", len(got))
			}
		}
	}
	if got, err := o.ListUserOrders(ctx, "nobody", 10); err != nil || len(got) != 0 {
		t.Fatalf("unknown user: %v, %v", got, err)
	}

	// Sales.
	sales, err := o.ListSales(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sales) != 3 {
		t.Fatalf("%d sales, want 3", len(sales))
	}
	for _, s := range sales {
		want := f.Sales[s.ID]
		got, err := o.GetSale(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != s || got.Name != want.Name || got.Stock != want.Stock || got.Currency != want.Currency ||
			got.Ended != want.Ended || got.Unsold != want.Unsold || got.EndReason != want.EndReason ||
			got.CreatedAt.IsZero() || got.Ended == got.EndedAt.IsZero() {
			t.Fatalf("sale %s:\n got  %+v\n list %+v\n fold %+v", s.ID, got, s, want.SaleCreated)
		}
	}
	if _, err := o.GetSale(ctx, "nope"); !errors.Is(err, domain.ErrSaleNotFound) {
		t.Fatalf("missing sale: err %v, want ErrSaleNotFound", err)
	}
}

// TestQueriesHideUnfinishedRows: rows the log has only begun to tell about
// (a StockReserved without its OrderPlaced yet, a SaleEnded before its
// SaleCreated) are not answered as orders or sales.
func TestQueriesHideUnfinishedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := readmodelstest.NewPool(t)
	o := readmodelstest.NewOrders(t, pool)
	st := &readmodelstest.Stream{}
	at := readmodelstest.US(readmodelstest.Time)
	st.Add(t, domain.StockReserved{SaleID: "s1", OrderID: "s1-a", UserID: "u1", Quantity: 1}, at)
	st.Add(t, domain.SaleEnded{SaleID: "s2", Unsold: 1, Reason: domain.EndReasonWindowClosed}, at)
	if _, err := readmodelstest.NewApplier(t, pool, o).Apply(ctx, st.Records(topic, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := o.GetOrder(ctx, "s1-a"); !errors.Is(err, domain.ErrOrderNotFound) {
		t.Fatalf("reserved, not placed: err %v", err)
	}
	if got, _ := o.ListUserOrders(ctx, "u1", 0); len(got) != 0 {
		t.Fatalf("reserved, not placed, listed: %+v", got)
	}
	if _, err := o.GetSale(ctx, "s2"); !errors.Is(err, domain.ErrSaleNotFound) {
		t.Fatalf("ended, not created: err %v", err)
	}
	readmodelstest.AssertRowsMatchFold(t, pool, st.Envs) // the rows are there all the same
}

func TestOrderViewJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(readmodels.OrderView{OrderID: "s-1", Status: domain.StatusPaid, PaidAt: readmodelstest.Time,
		History: []domain.HistoryEntry{{Type: domain.TypeOrderPlaced, At: readmodelstest.Time}}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"order_id", "sale_id", "user_id", "quantity", "price_cents", "amount_cents", "status",
		"pay_by", "placed_at", "paid_at", "history"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %s", k, b)
		}
	}
	if _, ok := m["expired_at"]; ok {
		t.Errorf("zero expired_at present in %s", b)
	}
}

// TestShadowTables applies into schema-qualified copies of the tables, as a
// rebuild does, and leaves the live tables alone.
func TestShadowTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := readmodelstest.NewPool(t)
	_, err := pool.Exec(ctx, `CREATE SCHEMA shadow;
		CREATE TABLE shadow.orders (LIKE public.orders INCLUDING ALL);
		CREATE TABLE shadow.sales (LIKE public.sales INCLUDING ALL);
		CREATE TABLE shadow.projection_checkpoints (LIKE public.projection_checkpoints INCLUDING ALL);
		CREATE TABLE shadow.projection_dead_letters (LIKE public.projection_dead_letters INCLUDING ALL);`)
	if err != nil {
		t.Fatal(err)
	}
	o, err := readmodels.NewOrders(readmodels.OrdersConfig{OrdersTable: "shadow.orders", SalesTable: "shadow.sales"}, pool)
	if err != nil {
		t.Fatal(err)
	}
	a, err := projections.NewApplier(projections.ApplierConfig{
		CheckpointTable: "shadow.projection_checkpoints", DeadLetterTable: "shadow.projection_dead_letters",
	}, pool, o)
	if err != nil {
		t.Fatal(err)
	}
	st := readmodelstest.Gen(t, 32, 2, 30)
	recs := st.Records(topic, 4)
	recs = append(recs[:10:10], append([]eventstore.Record{{Topic: topic, Partition: 9, Offset: 0, Value: []byte("junk")}}, recs[10:]...)...)
	if _, err := a.Apply(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if got, _ := o.ListSales(ctx, 0); len(got) != 2 {
		t.Fatalf("shadow sales: %d, want 2", len(got))
	}
	if pos, _ := projections.ReadPositions(ctx, pool, "shadow.projection_checkpoints", readmodels.NameOrders); len(pos) != 5 {
		t.Fatalf("shadow positions: %+v", pos)
	}
	if dl, _ := projections.ReadDeadLetters(ctx, pool, "shadow.projection_dead_letters", readmodels.NameOrders, 0); len(dl) != 1 {
		t.Fatalf("shadow dead letters: %+v", dl)
	}
	var live int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM public.orders) + (SELECT count(*) FROM public.sales)
		+ (SELECT count(*) FROM public.projection_checkpoints) + (SELECT count(*) FROM public.projection_dead_letters)`).Scan(&live); err != nil || live != 0 {
		t.Fatalf("live tables touched: %d rows (err %v)", live, err)
	}
	// The shadow tables equal the fold: read them through search_path.
	cfg := pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["search_path"] = "shadow"
	shadow, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer shadow.Close()
	readmodelstest.AssertMatchesFold(t, shadow, st.Envs)

	for _, bad := range []string{"a.b.c", ".orders", "orders."} {
		if _, err := readmodels.NewOrders(readmodels.OrdersConfig{OrdersTable: bad}, pool); err == nil {
			t.Errorf("table name %q accepted", bad)
		}
	}
}
