package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// A draw-mode sale through `seckill serve` on two API nodes: every attempt
// in a slice's window is answered 202 entered (on either node), the slice's
// units go to winners drawn among them, each winner's result names an order
// they can pay, the losers are told so, and `seckill audit` draws every
// slice again from the log.
func TestDrawEndToEnd(t *testing.T) {
	s := startSystem(t)
	second := s.startAPINode()
	startsAt := time.Now().Add(time.Second).UTC()
	r := s.do("POST", "/v1/sales", s.admin, fmt.Sprintf(
		`{"name":"Lucky phone","stock":4,"price_cents":100,"starts_at":%q,"ends_at":%q,"per_user_limit":1,
		  "release_step":2,"release_interval_ms":1500,"release_mode":"draw"}`,
		startsAt.Format(time.RFC3339Nano), startsAt.Add(time.Hour).Format(time.RFC3339Nano)))
	if r.status != http.StatusCreated || r.body["release_mode"] != "draw" {
		t.Fatalf("create a draw sale: %d %s", r.status, r.raw)
	}
	sale := r.str("id")
	if r := s.do("POST", "/v1/sales", s.admin, `{"name":"x","stock":4,"starts_at":"2030-01-01T00:00:00Z","ends_at":"2030-01-02T00:00:00Z","release_mode":"draw"}`); r.status != http.StatusBadRequest || !strings.Contains(r.raw, "release_mode") {
		t.Errorf("a draw without release_step: %d %s, want 400 naming release_mode", r.status, r.raw)
	}
	time.Sleep(time.Until(startsAt.Add(100 * time.Millisecond)))

	// Ten shoppers enter slice 0, half through each node; one twice.
	users := make([]string, 10)
	for i := range users {
		users[i] = fmt.Sprintf("shopper%d", i)
		base := s.base
		if i%2 == 1 {
			base = second
		}
		r := s.doAt(base, "POST", "/v1/sales/"+sale+"/purchase", s.token(users[i]), `{"quantity":1}`)
		if r.status != http.StatusAccepted || r.str("status") != "entered" || r.body["slice"] != float64(0) ||
			r.header.Get("Location") != "/v1/sales/"+sale+"/draw" {
			t.Fatalf("%s enters: %d %s %v", users[i], r.status, r.raw, r.header)
		}
	}
	if r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token(users[0]), `{"quantity":1}`); r.status != http.StatusOK || r.str("status") != "entered" {
		t.Errorf("entering again: %d %s, want 200 the same entry", r.status, r.raw)
	}
	if r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token("greedy"), `{"quantity":2}`); r.status != http.StatusBadRequest {
		t.Errorf("two units in a draw: %d %s, want 400", r.status, r.raw)
	}

	// After the window: two winners with orders, eight losers.
	won := map[string]string{}
	deadline := time.Now().Add(20 * time.Second)
	for _, u := range users {
		for {
			r := s.do("GET", "/v1/sales/"+sale+"/draw", s.token(u), "")
			if r.status != http.StatusOK {
				t.Fatalf("%s's result: %d %s", u, r.status, r.raw)
			}
			if st := r.str("status"); st == "ordered" {
				won[u] = r.str("order_id")
				break
			} else if st == "lost" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's result after 20s: %s", u, r.raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(won) != 2 {
		t.Fatalf("slice 0 of 2 units: winners %v", won)
	}
	for u, order := range won {
		if r := s.do("POST", "/v1/orders/"+order+"/pay", s.token(u), `{"payment_ref":"pay-`+u+`"}`); r.status != http.StatusOK {
			t.Errorf("%s pays the drawn order %s: %d %s", u, order, r.status, r.raw)
		}
	}
	if r := s.do("GET", "/v1/sales/"+sale+"/draw", s.token("stranger"), ""); r.errCode() != "not_entered" {
		t.Errorf("a stranger's result: %d %s, want 404 not_entered", r.status, r.raw)
	}

	out, _, err := s.cli("audit", "--wait", "30s")
	if err != nil || !strings.Contains(out, "draws") || strings.Contains(out, "SKIP draws") {
		t.Fatalf("audit: %v\n%s", err, out)
	}

	// A forged draw of slice 1 planted in the log: winners the seed does
	// not give. The audit draws it again and fails.
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(s.env["SECKILL_KAFKA_BROKERS"], ",")...),
		kgo.DefaultProduceTopic(defaultTopic), kgo.RecordPartitioner(eventstore.Partitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	forged := domain.DrawHeld{SaleID: sale, DrawID: domain.DrawIDOf(sale, 1), Slice: 1, ClosedAt: startsAt.Add(3 * time.Second),
		Seed: strings.Repeat("ab", 32), Units: 1, Entrants: []string{"mallory", "shopper1"}, Winners: []string{"mallory"}}
	if w := domain.Draw(bytes.Repeat([]byte{0xab}, 32), forged.Entrants, 1); w[0] == "mallory" {
		forged.Winners = []string{"shopper1"} // the draw picks mallory: forge the other
	}
	v, err := domain.EncodeWith(forged, time.Now(), domain.Metadata{CorrelationID: "forger", CausationID: "forger"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte(forged.DrawID), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out, _, err = s.cli("audit", "--wait", "30s")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "draw "+forged.DrawID+": recorded winners") {
		t.Errorf("audit of a forged draw: %v\n%s", err, out)
	}
	t.Logf("audit:\n%s", out)
}
