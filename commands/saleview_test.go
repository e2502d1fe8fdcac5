package commands_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// TestSaleViewJSON pins the member order of the sale answer (POST and GET
// /v1/sales): the terms, the live counters, then the protections and the
// shard count, as clients have always been answered. SaleView embeds the
// domain's types, so a field moved there would move here.
func TestSaleViewJSON(t *testing.T) {
	at := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	v := commands.SaleView{
		ID: "s1",
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: 10, PriceCents: 1999, StartsAt: at, EndsAt: at.Add(time.Hour),
			PerUserLimit: 2, PayWithinS: 900, Currency: "EUR",
		},
		Remaining: 7, State: commands.SaleEnded, EndReason: domain.EndReasonEarly, Unsold: 7, ServerTime: at,
		Protections: domain.Protections{UserIntervalMS: 1000, RequireToken: true},
		Shards:      2,
	}
	const want = `{"id":"s1","name":"phone","stock":10,"price_cents":1999,` +
		`"starts_at":"2026-11-11T20:00:00Z","ends_at":"2026-11-11T21:00:00Z","per_user_limit":2,"pay_within_s":900,` +
		`"currency":"EUR","remaining":7,"state":"ended","end_reason":"ended_early","unsold":7,"server_time":"2026-11-11T20:00:00Z",` +
		`"user_interval_ms":1000,"require_token":true,"shards":2}`
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("sale view JSON\n got %s\nwant %s", got, want)
	}
}
