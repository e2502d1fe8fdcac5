package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
)

// TestFoldDuplicates: a redelivered event is skipped; the same id with a
// different body is a violation.
func TestFoldDuplicates(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	f := domain.NewFold()
	apply := func(e domain.Event) bool {
		env, err := domain.NewEnvelope(e, at)
		if err != nil {
			t.Fatal(err)
		}
		return f.Apply(env, e)
	}
	created := domain.SaleCreated{SaleID: "s", SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
		Name: "n", Stock: 1, PerUserLimit: 1, Currency: "CNY",
	}}}
	if !apply(created) || apply(created) {
		t.Fatal("first apply must count, the redelivery not")
	}
	if f.Events != 1 || f.Duplicates != 1 || len(f.Violations()) != 0 {
		t.Fatalf("events %d duplicates %d violations %v", f.Events, f.Duplicates, f.Violations())
	}
	created.Stock = 2
	apply(created)
	if v := f.Violations(); len(v) != 1 || !strings.Contains(v[0], "appears twice with different payloads") {
		t.Errorf("violations %v", v)
	}
}
