package domain_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
)

// field returns the field a *domain.ValidationError in err names, "" for nil,
// and "?" for any other error.
func field(err error) string {
	if err == nil {
		return ""
	}
	var ve *domain.ValidationError
	if !errors.As(err, &ve) {
		return "?"
	}
	return ve.Field
}

func TestValidateText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"plain", "Phone X", true},
		{"CJK and emoji", "秒杀 手机 📱", true},
		{"at the limit", strings.Repeat("é", 10), true},
		{"over the limit", strings.Repeat("é", 11), false},
		{"NUL", "pay\x00ref", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"DEL", "a\x7fb", false},
		{"C1 control", "a\u0085b", false},
		{"invalid UTF-8", "a\xffb", false},
		{"truncated UTF-8", "a\xe7\xa7", false},
		{"lone surrogate as UTF-8", "\xed\xa0\x80", false},
		{"replacement character itself", "a\uFFFDb", true},
	}
	for _, tc := range tests {
		err := domain.ValidateText("f", tc.in, 10)
		if tc.ok != (err == nil) || (err != nil && field(err) != "f") {
			t.Errorf("%s: ValidateText(%q) = %v, want ok=%v naming f", tc.name, tc.in, err, tc.ok)
		}
	}
}

func TestValidatePurchase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, user string
		qty        int64
		key        string
		want       string // field, "" for valid
		wantErr    error
	}{
		{name: "valid", user: "alice", qty: 1, key: "k-1"},
		{name: "valid key with spaces and punctuation", user: "alice", qty: 100, key: `a b:"c"/~`},
		{name: "no user", user: "", qty: 1, wantErr: domain.ErrUnauthenticated},
		{name: "odd user", user: "al ice", qty: 1, want: "user_id"},
		{name: "zero", user: "alice", qty: 0, want: "quantity"},
		{name: "negative", user: "alice", qty: -1, want: "quantity"},
		{name: "over the limit", user: "alice", qty: domain.MaxQuantity + 1, want: "quantity"},
		{name: "huge", user: "alice", qty: math.MaxInt64, want: "quantity"},
		{name: "key not UTF-8", user: "alice", qty: 1, key: "k\xff", want: "Idempotency-Key"},
		{name: "key UTF-8 but not ASCII", user: "alice", qty: 1, key: "clé", want: "Idempotency-Key"},
		{name: "key with NUL", user: "alice", qty: 1, key: "k\x00", want: "Idempotency-Key"},
		{name: "key too long", user: "alice", qty: 1, key: strings.Repeat("k", domain.MaxIdempotencyKeyLen+1), want: "Idempotency-Key"},
		{name: "key at the limit", user: "alice", qty: 1, key: strings.Repeat("k", domain.MaxIdempotencyKeyLen)},
	}
	for _, tc := range tests {
		err := domain.ValidatePurchase(tc.user, tc.qty, tc.key)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
			}
			continue
		}
		if got := field(err); got != tc.want {
			t.Errorf("%s: %v (field %q), want field %q", tc.name, err, got, tc.want)
		}
	}
}

func TestPurchaseQuantity(t *testing.T) {
	t.Parallel()
	if q, err := domain.PurchaseQuantity(nil); q != domain.DefaultQuantity || err != nil {
		t.Errorf("absent: %d %v, want the default", q, err)
	}
	for _, q := range []int64{0, -1, domain.MaxQuantity + 1} {
		if _, err := domain.PurchaseQuantity(&q); field(err) != "quantity" {
			t.Errorf("quantity %d: %v, want refused", q, err)
		}
	}
	q := int64(3)
	if got, err := domain.PurchaseQuantity(&q); got != 3 || err != nil {
		t.Errorf("quantity 3: %d %v", got, err)
	}
}

func TestPaymentRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		field    string
	}{
		{"  ref-1 ", "ref-1", ""},
		{"", "", "payment_ref"},
		{" \t ", "", "payment_ref"},
		{"pay\x00ref", "", "payment_ref"},
		{"pay\xffref", "", "payment_ref"},
		{strings.Repeat("r", domain.MaxPaymentRefLen+1), "", "payment_ref"},
		{"支付-42", "支付-42", ""},
	}
	for _, tc := range tests {
		got, err := domain.PaymentRef(tc.in)
		if field(err) != tc.field || (err == nil && got != tc.want) {
			t.Errorf("PaymentRef(%q) = %q, %v; want %q, field %q", tc.in, got, err, tc.want, tc.field)
		}
	}
}

// TestSaleSpecBounds: every number and time of a sale is bounded so that the
// gate's arithmetic (price × quantity, the paid sum, the release schedule)
// cannot wrap and every time survives the log's JSON.
func TestSaleSpecBounds(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	base := domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "n", Stock: 10, PriceCents: 100, StartsAt: start, EndsAt: start.Add(time.Hour),
		},
	}
	tests := []struct {
		name  string
		edit  func(*domain.SaleSpec)
		field string
	}{
		{"valid", func(*domain.SaleSpec) {}, ""},
		{"name with NUL", func(s *domain.SaleSpec) { s.Name = "Phone\x00" }, "name"},
		{"name with a line break", func(s *domain.SaleSpec) { s.Name = "Pho\nne" }, "name"},
		{"name not UTF-8", func(s *domain.SaleSpec) { s.Name = "Phone\xff" }, "name"},
		{"name of spaces", func(s *domain.SaleSpec) { s.Name = "   " }, "name"},
		{"price at the value bound", func(s *domain.SaleSpec) { s.PriceCents = domain.MaxSaleValueCents / 10 }, ""},
		{"price × stock over the bound", func(s *domain.SaleSpec) { s.PriceCents = domain.MaxSaleValueCents/10 + 1 }, "price_cents"},
		{"price that wraps int64 × quantity", func(s *domain.SaleSpec) { s.PriceCents = math.MaxInt64 / 2 }, "price_cents"},
		{"max price of one unit", func(s *domain.SaleSpec) { s.Stock, s.PriceCents = 1, domain.MaxSaleValueCents }, ""},
		{"negative price", func(s *domain.SaleSpec) { s.PriceCents = -1 }, "price_cents"},
		{"huge stock", func(s *domain.SaleSpec) { s.Stock = math.MaxInt64 }, "stock"},
		{"huge per-user limit", func(s *domain.SaleSpec) { s.PerUserLimit = math.MaxInt64 }, "per_user_limit"},
		{"start before 1970", func(s *domain.SaleSpec) { s.StartsAt = time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC) }, "starts_at"},
		{"end past year 9000", func(s *domain.SaleSpec) { s.EndsAt = time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC) }, "ends_at"},
		{"end before start", func(s *domain.SaleSpec) { s.EndsAt = s.StartsAt }, "ends_at"},
		{"pay within that wraps", func(s *domain.SaleSpec) { s.PayWithinS = math.MaxInt64 }, "pay_within_s"},
		{"negative pay within", func(s *domain.SaleSpec) { s.PayWithinS = math.MinInt64 }, "pay_within_s"},
		// 10^7 slices of an hour each: the schedule in nanoseconds would
		// wrap int64 and look shorter than the window.
		{"release schedule that wraps", func(s *domain.SaleSpec) {
			s.Stock, s.PriceCents = domain.MaxStock, 1
			s.EndsAt = s.StartsAt.Add(24 * time.Hour)
			s.Protections = domain.Protections{ReleaseStep: 1, ReleaseIntervalMS: domain.MaxIntervalMS}
		}, "release_step"},
	}
	for _, tc := range tests {
		spec := base
		tc.edit(&spec)
		if got := field(spec.WithDefaults().Validate()); got != tc.field {
			t.Errorf("%s: Validate names %q, want %q (%v)", tc.name, got, tc.field, spec.WithDefaults().Validate())
		}
	}
	if got := (domain.SaleTerms{PayWithinS: 90}).PayWithin(); got != 90*time.Second {
		t.Errorf("PayWithin of 90 s = %v", got)
	}
}
