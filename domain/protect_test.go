package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
)

func TestProtectionsDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	spec := func(p domain.Protections) domain.SaleSpec {
		return domain.SaleSpec{
			SaleTerms: domain.SaleTerms{
				Name: "n", Stock: 200, StartsAt: start, EndsAt: start.Add(time.Hour),
			},
			Protections: p,
		}
	}
	tests := []struct {
		name  string
		in    domain.Protections
		want  domain.Protections // after WithDefaults
		field string             // the field Validate names, "" for valid
	}{
		{"all off by default", domain.Protections{}, domain.Protections{}, ""},
		{"staged: 100 ms and one attempt per second by default",
			domain.Protections{ReleaseStep: 5},
			domain.Protections{ReleaseStep: 5, ReleaseIntervalMS: 100, UserIntervalMS: 1000}, ""},
		{"staged with the interval off", domain.Protections{ReleaseStep: 5, UserIntervalMS: domain.UserIntervalOff},
			domain.Protections{ReleaseStep: 5, ReleaseIntervalMS: 100}, ""},
		{"explicit values kept", domain.Protections{UserIntervalMS: 3000, ReleaseStep: 10, ReleaseIntervalMS: 50, RequireToken: true},
			domain.Protections{UserIntervalMS: 3000, ReleaseStep: 10, ReleaseIntervalMS: 50, RequireToken: true}, ""},
		{"negative interval", domain.Protections{UserIntervalMS: -5}, domain.Protections{UserIntervalMS: -5}, "user_interval_ms"},
		{"interval too long", domain.Protections{UserIntervalMS: domain.MaxIntervalMS + 1}, domain.Protections{UserIntervalMS: domain.MaxIntervalMS + 1}, "user_interval_ms"},
		{"step over the stock", domain.Protections{ReleaseStep: 201, UserIntervalMS: domain.UserIntervalOff},
			domain.Protections{ReleaseStep: 201, ReleaseIntervalMS: 100}, "release_step"},
		{"negative step", domain.Protections{ReleaseStep: -1}, domain.Protections{ReleaseStep: -1}, "release_step"},
		{"interval without step", domain.Protections{ReleaseIntervalMS: 100}, domain.Protections{ReleaseIntervalMS: 100}, "release_interval_ms"},
		{"release longer than the window", domain.Protections{ReleaseStep: 1, ReleaseIntervalMS: 60_000},
			domain.Protections{ReleaseStep: 1, ReleaseIntervalMS: 60_000, UserIntervalMS: 1000}, "release_step"},
		{"a challenge implies the purchase token", domain.Protections{ChallengeBits: 16},
			domain.Protections{ChallengeBits: 16, RequireToken: true}, ""},
		{"challenge too hard", domain.Protections{ChallengeBits: domain.MaxChallengeBits + 1},
			domain.Protections{ChallengeBits: domain.MaxChallengeBits + 1, RequireToken: true}, "challenge_bits"},
		{"negative challenge", domain.Protections{ChallengeBits: -1}, domain.Protections{ChallengeBits: -1}, "challenge_bits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := spec(tc.in).WithDefaults()
			if got.Protections != tc.want {
				t.Errorf("WithDefaults: got %+v, want %+v", got.Protections, tc.want)
			}
			err := got.Validate()
			var ve *domain.ValidationError
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field):
				t.Errorf("Validate = %v, want an error on %s", err, tc.field)
			}
			if tc.field == "" && got.Created("s").Protections != tc.want {
				t.Errorf("SaleCreated carries %+v, want %+v", got.Created("s").Protections, tc.want)
			}
		})
	}
}

// TestSaleCreatedProtectionsOptional: the protections are optional fields of
// SaleCreated, absent when off, so events written before them (and sales
// without them) read and write unchanged.
func TestSaleCreatedProtectionsOptional(t *testing.T) {
	t.Parallel()
	plain, err := json.Marshal(domain.SaleCreated{SaleID: "s", SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
		Currency: "CNY",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"user_interval_ms", "release_step", "release_interval_ms", "require_token"} {
		if strings.Contains(string(plain), f) {
			t.Errorf("a sale without protections encodes %s: %s", f, plain)
		}
	}
	env, err := domain.Encode(domain.SaleCreated{SaleID: "s", SaleSpec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "n", Stock: 5, Currency: "EUR",
		},
		Protections: domain.Protections{UserIntervalMS: 1000, ReleaseStep: 5, ReleaseIntervalMS: 100, RequireToken: true},
	}}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, ev, err := domain.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.(domain.SaleCreated).Protections; got != (domain.Protections{UserIntervalMS: 1000, ReleaseStep: 5, ReleaseIntervalMS: 100, RequireToken: true}) {
		t.Errorf("round trip: %+v", got)
	}
}

func TestReleased(t *testing.T) {
	t.Parallel()
	p := domain.Protections{ReleaseStep: 5, ReleaseIntervalMS: 100}
	for _, tc := range []struct {
		elapsed time.Duration
		want    int64
	}{{-time.Millisecond, 0}, {0, 5}, {99 * time.Millisecond, 5}, {100 * time.Millisecond, 10}, {450 * time.Millisecond, 23}, {time.Hour, 23}} {
		if got := p.Released(23, tc.elapsed); got != tc.want {
			t.Errorf("released at %v = %d, want %d", tc.elapsed, got, tc.want)
		}
	}
	if got := (domain.Protections{}).Released(23, 0); got != 23 {
		t.Errorf("unstaged: %d", got)
	}
}
