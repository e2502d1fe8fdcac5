package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// recordCorpus makes TestRecordCorpus write the envelopes the gate produces
// into domain/testdata/corpus, which domain's corpus test decodes on every
// run. Run it after adding an event type or a schema version:
//
//	go test ./commands -run TestRecordCorpus -record-corpus
//
// Files already there are never rewritten: the corpus, like the log, only
// grows, so an envelope recorded by an old build keeps proving that the
// current build still reads it.
var recordCorpus = flag.Bool("record-corpus", false, "write the gate's envelopes into domain/testdata/corpus")

const corpusDir = "../domain/testdata/corpus"

// TestRecordCorpus drives every gate code path that writes an event (create,
// purchase with and without an idempotency key, pay, expire to the pool and
// to regular inventory, end early and at the window's close) and records one
// envelope of each kind, byte for byte as the outbox holds it.
func TestRecordCorpus(t *testing.T) {
	if !*recordCorpus {
		t.Log("recording is off; pass -record-corpus to write domain/testdata/corpus")
	}
	// Every command carries a request's metadata, as the HTTP layer gives
	// it (envelope v2); the sweeps' events are caused by other events.
	ctx := domain.WithMetadata(context.Background(), domain.Metadata{
		CorrelationID: "4bf92f3577b34da6a3ce929d0e0e4736", CausationID: "corpus-host/abcdef-000001"})
	f := newFixture(t)

	s, err := f.gate.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: 10, PriceCents: 1999, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: 3, PayWithinS: 60, Currency: "EUR",
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Purchases: one without a key, one with; one gets paid, one expires
	// while the sale runs (to the pool).
	paid, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: s.ID, UserID: "alice", Quantity: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: s.ID, UserID: "bob", IdempotencyKey: "attempt-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.gate.Pay(ctx, commands.Pay{OrderID: paid.OrderID, UserID: "alice", PaymentRef: "pay-1"}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Minute)
	if _, err := f.gate.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// A reservation that expires after its sale was ended early: its units go
	// to regular inventory.
	if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: s.ID, UserID: "carol"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.gate.EndSale(ctx, commands.EndSale{SaleID: s.ID}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Minute)
	if _, err := f.gate.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// A sale the sweeper closes at the end of its window.
	s2 := f.sale(t, 1, 1, time.Minute)
	f.clock.Set(s2.EndsAt.Add(time.Second))
	if _, err := f.gate.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// A sharded sale (docs/sharding.md): a buyer whose home shard is empty
	// pulls a unit from the other shard (StockMoved); its end records each
	// shard's unsold units.
	now := f.clock.Now()
	s3, err := f.gate.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "hot phone", Stock: 2, PriceCents: 1999, StartsAt: now, EndsAt: now.Add(time.Hour),
			PerUserLimit: 1, PayWithinS: 60,
		},
		Shards: 2,
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range homeUsers("dora", 0, 2, 2) {
		if _, err := f.gate.Purchase(ctx, commands.Purchase{SaleID: s3.ID, UserID: u}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.gate.EndSale(ctx, commands.EndSale{SaleID: s3.ID}); err != nil {
		t.Fatal(err)
	}

	recorded := map[string][]byte{}
	streams, err := f.rdb.SMembers(ctx, f.gate.OutboxesKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range streams {
		entries, err := f.rdb.XRange(ctx, st, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			for i := 1; i <= len(e.Values); i++ {
				raw := []byte(e.Values[strconv.Itoa(i)].(string))
				name, err := corpusName(raw)
				if err != nil {
					t.Fatal(err)
				}
				if env, _ := domain.DecodeEnvelope(raw); env.Metadata.CorrelationID == "" {
					continue // written by a fixture helper outside a request
				}
				if _, ok := recorded[name]; !ok {
					recorded[name] = raw
				}
			}
		}
	}
	for _, typ := range domain.EventTypes() {
		if typ == domain.TypeDrawHeld {
			continue // written by package draw, which records it (draw/draw_test.go)
		}
		v, _ := domain.CurrentVersion(typ)
		found := false
		for name := range recorded {
			found = found || strings.HasPrefix(name+".", fmt.Sprintf("%s.v%d.", typ, v))
		}
		if !found {
			t.Errorf("the gate wrote no %s v%d: the recorder misses a code path", typ, v)
		}
	}
	if !*recordCorpus {
		return
	}
	if err := os.MkdirAll(corpusDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, raw := range recorded {
		p := filepath.Join(corpusDir, name+".json")
		if _, err := os.Stat(p); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s", p)
	}
}

// corpusName names a recorded envelope TYPE.vVERSION[.eENVELOPE][.VARIANT]:
// the envelope's own version when it is past 1 (v1 files predate it), and a
// variant telling apart envelopes of one type whose payloads take different
// shapes.
func corpusName(raw []byte) (string, error) {
	env, err := domain.DecodeEnvelope(raw)
	if err != nil {
		return "", err
	}
	var recorded struct {
		Envelope int `json:"envelope"`
	}
	if err := json.Unmarshal(raw, &recorded); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s.v%d", env.Type, env.Version)
	if recorded.Envelope > 1 {
		name += fmt.Sprintf(".e%d", recorded.Envelope)
	}
	var p map[string]any
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return "", err
	}
	switch env.Type {
	case domain.TypeStockReleased:
		if p["to_pool"] == true {
			return name + ".to_pool", nil
		}
		return name + ".to_inventory", nil
	case domain.TypeSaleEnded:
		name += "." + fmt.Sprint(p["reason"])
		if _, ok := p["shards_unsold"]; ok {
			return name + ".sharded", nil
		}
		return name, nil
	case domain.TypeSaleCreated:
		if _, ok := p["shards"]; ok {
			return name + ".sharded", nil
		}
	case domain.TypeOrderPlaced:
		if k, _ := p["idempotency_key"].(string); k != "" {
			return name + ".idempotency_key", nil
		}
	}
	return name, nil
}
