package domain

import "context"

// CurrentEnvelopeVersion is the schema version of the envelope itself (not
// of its payload, which each event type versions on its own). Version 1 had
// no metadata; version 2 added Metadata. Older envelopes are upcast on
// decoding (upcastEnvelope), so every reader sees the current shape.
const CurrentEnvelopeVersion = 2

// Metadata traces an event to what caused it, so an operator can go from a
// request to every event it wrote, and from an event to the one that led to
// it. Both ids are opaque strings.
type Metadata struct {
	// CorrelationID is shared by every event of one unit of work: the
	// request that wrote them (its W3C trace id when the caller sent a
	// traceparent, else its X-Request-Id), or one pass of the sweeper.
	CorrelationID string `json:"correlation_id,omitempty"`
	// CausationID is what directly caused the event: the request id for
	// the events a request wrote; the id of the event that led to it for
	// an event caused by another (an order's OrderPlaced for its
	// OrderExpired, the OrderExpired for its StockReleased).
	CausationID string `json:"causation_id,omitempty"`
}

// IsZero reports whether md carries nothing (json omitzero, and the codec).
func (md Metadata) IsZero() bool { return md.CorrelationID == "" && md.CausationID == "" }

// CausedBy returns md with the causation set to the event eventID: for an
// event that another event led to, in the same unit of work.
func (md Metadata) CausedBy(eventID string) Metadata {
	md.CausationID = eventID
	return md
}

type metadataKey struct{}

// WithMetadata returns ctx carrying md: the HTTP layer puts a request's
// metadata there, and the commands take it to the events they write.
func WithMetadata(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, md)
}

// MetadataFrom returns the metadata ctx carries, zero if none.
func MetadataFrom(ctx context.Context) Metadata {
	md, _ := ctx.Value(metadataKey{}).(Metadata)
	return md
}

// upcastEnvelope brings env's own schema to CurrentEnvelopeVersion. Like the
// payload upcasters it is pure: v1 → v2 adds empty metadata (a v1 envelope
// recorded none). A newer envelope than this build knows is left as it is:
// its versions only ever add fields, and the relay must forward what a newer
// gate wrote during a rolling upgrade.
func upcastEnvelope(env *Envelope) {
	if env.EnvelopeVersion == 0 {
		env.EnvelopeVersion = 1 // written before the field existed
	}
	if env.EnvelopeVersion == 1 {
		env.EnvelopeVersion = 2
	}
}
