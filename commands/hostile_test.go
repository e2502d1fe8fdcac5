package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// TestPayWritesNothingItCannotRecord (issue 15, item 3): a payment whose
// amount would carry the paid total past what the log's readers can count
// is refused before the script writes anything: the order stays reserved
// and due, and no OrderPaid is in the outbox. (New sales cannot get there,
// domain bounds price × stock; a sale of an earlier version could.)
func TestPayWritesNothingItCannotRecord(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sale := f.sale(t, 5, 1, time.Minute)
	res, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	k := f.gate.Keyspace().Shard(sale.ID, 0, 1)
	f.rdb.HSet(ctx, k.Hash, "paid_cents", int64(1)<<53-100)
	before := f.rdb.XLen(ctx, k.Outbox).Val()
	_, err = f.gate.Pay(ctx, commands.Pay{OrderID: res.OrderID, UserID: "ann", PaymentRef: "p1"})
	if !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("pay = %v, want ErrConflict", err)
	}
	o, err := f.gate.Order(ctx, res.OrderID)
	if err != nil || o.Status != domain.StatusReserved || o.PaymentRef != "" {
		t.Fatalf("order after the refused payment: %+v, %v", o, err)
	}
	if n := f.rdb.ZScore(ctx, k.Due, res.OrderID).Val(); n == 0 {
		t.Error("the order left the expiry queue")
	}
	if after := f.rdb.XLen(ctx, k.Outbox).Val(); after != before {
		t.Errorf("outbox grew from %d to %d entries", before, after)
	}
	if got := f.rdb.HGet(ctx, k.Hash, "paid").Val(); got != "0" {
		t.Errorf("paid units %s, want 0", got)
	}
}
