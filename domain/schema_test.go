package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
)

// TestSaleCreatedV1Upcast: a v1 SaleCreated, which had no currency, reads as
// a sale in the default currency; a v2 keeps its own.
func TestSaleCreatedV1Upcast(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"v1", `{"id":"s1/SaleCreated","type":"SaleCreated","version":1,"occurred_at":"2026-11-11T20:00:00Z","aggregate_id":"s1",
			"payload":{"sale_id":"s1","name":"n","stock":1,"price_cents":1,"starts_at":"2026-11-11T20:00:00Z","ends_at":"2026-11-11T21:00:00Z","per_user_limit":1,"pay_within_s":60}}`, "CNY"},
		{"v2", `{"id":"s1/SaleCreated","type":"SaleCreated","version":2,"occurred_at":"2026-11-11T20:00:00Z","aggregate_id":"s1",
			"payload":{"sale_id":"s1","name":"n","stock":1,"price_cents":1,"starts_at":"2026-11-11T20:00:00Z","ends_at":"2026-11-11T21:00:00Z","per_user_limit":1,"pay_within_s":60,"currency":"EUR"}}`, "EUR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, ev, err := domain.Decode([]byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			sc, ok := ev.(domain.SaleCreated)
			if !ok || sc.Currency != tc.want || env.Version != 2 {
				t.Errorf("got %#v at v%d, want currency %s at v2", ev, env.Version, tc.want)
			}
		})
	}
	// A v3 is from a newer build: refused with a clear error, not misread.
	_, _, err := domain.Decode([]byte(`{"id":"s1/SaleCreated","type":"SaleCreated","version":3,"aggregate_id":"s1","payload":{}}`))
	if err == nil {
		t.Error("v3 decoded")
	}
	// An upcaster refuses a payload that is not an object.
	if _, _, err := domain.Decode([]byte(`{"id":"s1/SaleCreated","type":"SaleCreated","version":1,"aggregate_id":"s1","payload":[1]}`)); err == nil {
		t.Error("array payload decoded")
	}
}

func TestSaleSpecCurrency(t *testing.T) {
	t.Parallel()
	base := domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "n", Stock: 1, StartsAt: time.Unix(0, 0), EndsAt: time.Unix(60, 0),
		},
	}
	if got := base.WithDefaults().Currency; got != domain.DefaultCurrency {
		t.Errorf("default currency %q, want %q", got, domain.DefaultCurrency)
	}
	for _, tc := range []struct {
		currency string
		ok       bool
	}{{"EUR", true}, {"USD", true}, {"eur", false}, {"EURO", false}, {"E1R", false}, {"€", false}} {
		spec := base
		spec.Currency = tc.currency
		err := spec.WithDefaults().Validate()
		var ve *domain.ValidationError
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &ve) || ve.Field != "currency")) {
			t.Errorf("currency %q: %v, want ok=%v", tc.currency, err, tc.ok)
		}
		if tc.ok && spec.WithDefaults().Created("s").Currency != tc.currency {
			t.Errorf("currency %q not in SaleCreated", tc.currency)
		}
	}
}
