package commands

import (
	"context"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/testenv"
)

// TestUnblockRacingSaleCreation (issue 15, item 5): a user unblocked while a
// sale is being created is not left blocked in that sale. The creation is
// held right after it read the blacklist (with the user on it), and the
// unblock runs then: it must wait for the copy, then take the user out of it.
func TestUnblockRacingSaleCreation(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	g, err := NewGate(GateConfig{Clock: NewManualClock(t0)}, testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	spec := domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: 100, PriceCents: 100, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: 1, PayWithinS: 60,
		},
		Shards: 3,
	}.WithDefaults()
	for _, user := range []string{"ann", "bob"} {
		if err := g.Block(ctx, user); err != nil {
			t.Fatal(err)
		}
		read := make(chan struct{})
		g.afterBlacklistRead = func() {
			close(read)
			time.Sleep(100 * time.Millisecond)
		}
		created := make(chan error, 1)
		var id string
		go func() {
			v, err := g.createSale(ctx, "race"+user, spec)
			id = v.ID
			created <- err
		}()
		<-read
		g.afterBlacklistRead = nil
		if err := g.Unblock(ctx, user); err != nil {
			t.Fatal(err)
		}
		if err := <-created; err != nil {
			t.Fatal(err)
		}
		for s := range 3 {
			if key := g.ks.Shard(id, s, 3).Blocked; g.rdb.SIsMember(ctx, key, user).Val() {
				t.Fatalf("%s unblocked while sale %s was created, but still in %s", user, id, key)
			}
		}
		if _, err := g.Purchase(ctx, Purchase{SaleID: id, UserID: user}); err != nil {
			t.Fatalf("unblocked %s cannot buy: %v", user, err)
		}
	}
}
