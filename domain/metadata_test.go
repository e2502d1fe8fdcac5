package domain_test

import (
	"context"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
)

// TestEnvelopeMetadata: the metadata written is the metadata read, on the
// fast path and through encoding/json; a v1 envelope (no "envelope", no
// "metadata") reads as the current envelope version with none.
func TestEnvelopeMetadata(t *testing.T) {
	at := time.Date(2026, 11, 11, 20, 0, 3, 0, time.UTC)
	ev := domain.OrderPaid{OrderID: "s-o", SaleID: "s", UserID: "u", Quantity: 1, AmountCents: 100, PaymentRef: "p"}
	for _, md := range []domain.Metadata{{}, {CorrelationID: "4bf92f3577b34da6a3ce929d0e0e4736", CausationID: "node/x-000001"},
		{CausationID: "s-o/OrderPlaced"}, {CorrelationID: "tab\there"}} {
		raw, err := domain.EncodeWith(ev, at, md)
		if err != nil {
			t.Fatal(err)
		}
		env, got, err := domain.Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if env.Metadata != md || env.EnvelopeVersion != domain.CurrentEnvelopeVersion || got != ev {
			t.Errorf("%s decodes to %+v %+v, want metadata %+v", raw, env, got, md)
		}
	}
	v1 := `{"id":"s-o/OrderPaid","type":"OrderPaid","version":1,"occurred_at":"2026-11-11T20:00:03Z","aggregate_id":"s-o",` +
		`"payload":{"order_id":"s-o","sale_id":"s","user_id":"u","quantity":1,"amount_cents":100,"payment_ref":"p"}}`
	env, got, err := domain.Decode([]byte(v1))
	if err != nil || got != ev || env.EnvelopeVersion != domain.CurrentEnvelopeVersion || !env.Metadata.IsZero() {
		t.Errorf("v1 envelope: %+v %+v %v", env, got, err)
	}
	for _, bad := range []string{`"envelope":-1,`} {
		raw := `{"id":"a","type":"OrderPaid","version":1,` + bad + `"occurred_at":"2026-11-11T20:00:03Z","aggregate_id":"a","payload":{}}`
		if _, err := domain.DecodeEnvelope([]byte(raw)); err == nil {
			t.Errorf("%s: decoded", raw)
		}
	}
}

func TestMetadataContext(t *testing.T) {
	md := domain.Metadata{CorrelationID: "c", CausationID: "r"}
	if got := domain.MetadataFrom(domain.WithMetadata(context.Background(), md)); got != md {
		t.Errorf("round trip through a context: %+v", got)
	}
	if got := domain.MetadataFrom(context.Background()); !got.IsZero() {
		t.Errorf("empty context: %+v", got)
	}
	if got := md.CausedBy("o/OrderPlaced"); got.CorrelationID != "c" || got.CausationID != "o/OrderPlaced" {
		t.Errorf("CausedBy: %+v", got)
	}
}
