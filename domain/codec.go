package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

//go:generate go run ../internal/codecgen/cmd/codecgen

// Envelope is how every event is stored in the log. The payload is the event's
// JSON at schema version Version; Decode upcasts it to the current version.
type Envelope struct {
	// ID is unique in the log and deterministic (aggregate id + "/" + type): an
	// aggregate has at most one event of each type, and consumers deduplicate
	// redeliveries by it.
	ID   string `json:"id"`
	Type string `json:"type"`
	// Version is the schema version of the payload (per event type).
	Version int `json:"version"`
	// EnvelopeVersion is the schema version of the envelope itself
	// (CurrentEnvelopeVersion); absent in envelopes of version 1.
	EnvelopeVersion int       `json:"envelope,omitempty"`
	OccurredAt      time.Time `json:"occurred_at"`
	AggregateID     string    `json:"aggregate_id"`
	// Metadata traces the event to its request and cause (envelope v2;
	// omitted when empty).
	Metadata Metadata        `json:"metadata,omitzero"`
	Payload  json.RawMessage `json:"payload"`
}

// Upcaster rewrites one event payload from schema version N to N+1. Upcasters
// are pure: the log is kept forever and every old event is decoded through them.
type Upcaster func(payload json.RawMessage) (json.RawMessage, error)

// schema is what the codec knows of one event type: its current version, the
// upcasters from each older version, and how to make an empty value.
type schema struct {
	current   int
	upcasters map[int]Upcaster // from version N to N+1
	empty     func() Event
}

var schemas = map[string]schema{
	TypeSaleCreated: {current: 2, empty: func() Event { return &SaleCreated{} },
		upcasters: map[int]Upcaster{1: upcastSaleCreatedV1}},
	TypeStockReserved: {current: 1, empty: func() Event { return &StockReserved{} }},
	TypeOrderPlaced: {current: 2, empty: func() Event { return &OrderPlaced{} },
		upcasters: map[int]Upcaster{1: upcastOrderPlacedV1}},
	TypeOrderPaid:     {current: 1, empty: func() Event { return &OrderPaid{} }},
	TypeOrderExpired:  {current: 1, empty: func() Event { return &OrderExpired{} }},
	TypeStockReleased: {current: 1, empty: func() Event { return &StockReleased{} }},
	TypeSaleEnded:     {current: 1, empty: func() Event { return &SaleEnded{} }},
	TypeStockMoved:    {current: 1, empty: func() Event { return &StockMoved{} }},
	TypeDrawHeld:      {current: 1, empty: func() Event { return &DrawHeld{} }},
}

// EventTypes lists every event type the codec knows, for filters and docs.
func EventTypes() []string {
	return []string{TypeSaleCreated, TypeStockReserved, TypeOrderPlaced, TypeOrderPaid,
		TypeOrderExpired, TypeStockReleased, TypeSaleEnded, TypeStockMoved, TypeDrawHeld}
}

// CurrentVersion is the schema version new events of type t are written with.
func CurrentVersion(t string) (int, bool) {
	s, ok := schemas[t]
	return s.current, ok
}

// EventID is the deterministic id of the event of type t on aggregate agg.
func EventID(agg, t string) string { return agg + "/" + t }

// NewEnvelope wraps e at the current schema version of its type.
func NewEnvelope(e Event, at time.Time) (Envelope, error) {
	t := e.EventType()
	v, ok := CurrentVersion(t)
	if !ok {
		return Envelope{}, fmt.Errorf("event type %q has no schema", t)
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s payload: %w", t, err)
	}
	return Envelope{
		ID:              EventID(e.AggregateID(), t),
		Type:            t,
		Version:         v,
		EnvelopeVersion: CurrentEnvelopeVersion,
		OccurredAt:      at.UTC(),
		AggregateID:     e.AggregateID(),
		Payload:         payload,
	}, nil
}

// Encode returns the JSON of e's envelope at time at, without metadata: the
// bytes of one log record.
func Encode(e Event, at time.Time) ([]byte, error) { return EncodeWith(e, at, Metadata{}) }

// EncodeWith is Encode with the envelope's metadata: what the commands
// write, with the metadata of the request (MetadataFrom) or of the event
// that caused e.
func EncodeWith(e Event, at time.Time, md Metadata) ([]byte, error) {
	// Every event has a generated encoder that writes the same bytes as
	// json.Marshal (fastjson.go, codec_gen.go).
	if b, ok := appendEvent(make([]byte, 0, 512), e, at, md); ok {
		return b, nil
	}
	env, err := NewEnvelope(e, at)
	if err != nil {
		return nil, err
	}
	env.Metadata = md
	return json.Marshal(env)
}

// DecodeEnvelope parses a log record without looking at its payload, and
// upcasts the envelope itself to CurrentEnvelopeVersion.
func DecodeEnvelope(data []byte) (Envelope, error) {
	// What Encode wrote is read without reflection (fastjson.go); anything
	// else goes through encoding/json.
	env, ok := fastEnvelope(data)
	if !ok {
		if err := json.Unmarshal(data, &env); err != nil {
			return Envelope{}, fmt.Errorf("decode envelope: %w", err)
		}
	}
	switch {
	case env.ID == "":
		return Envelope{}, fmt.Errorf("decode envelope: missing id")
	case env.Type == "":
		return Envelope{}, fmt.Errorf("decode envelope %s: missing type", env.ID)
	case env.Version < 1:
		return Envelope{}, fmt.Errorf("decode envelope %s: bad version %d", env.ID, env.Version)
	case len(env.Payload) == 0:
		return Envelope{}, fmt.Errorf("decode envelope %s: missing payload", env.ID)
	case env.EnvelopeVersion < 0:
		return Envelope{}, fmt.Errorf("decode envelope %s: bad envelope version %d", env.ID, env.EnvelopeVersion)
	}
	upcastEnvelope(&env)
	return env, nil
}

// Decode parses a log record, upcasts its payload to the current version and
// returns the envelope (with Version and Payload now current) and the event.
func Decode(data []byte) (Envelope, Event, error) {
	env, err := DecodeEnvelope(data)
	if err != nil {
		return Envelope{}, nil, err
	}
	ev, err := DecodePayload(&env)
	return env, ev, err
}

// DecodePayload upcasts env's payload in place and decodes it strictly: a field
// the current schema does not know is an error, so a broken producer is caught
// instead of silently dropping data.
func DecodePayload(env *Envelope) (Event, error) {
	s, ok := schemas[env.Type]
	if !ok {
		return nil, fmt.Errorf("event %s: unknown type %q", env.ID, env.Type)
	}
	if env.Version > s.current {
		return nil, fmt.Errorf("event %s: %s version %d is newer than this build knows (%d)", env.ID, env.Type, env.Version, s.current)
	}
	for env.Version < s.current {
		up, ok := s.upcasters[env.Version]
		if !ok {
			return nil, fmt.Errorf("event %s: no upcaster for %s v%d", env.ID, env.Type, env.Version)
		}
		p, err := up(env.Payload)
		if err != nil {
			return nil, fmt.Errorf("event %s: upcast %s v%d: %w", env.ID, env.Type, env.Version, err)
		}
		env.Payload, env.Version = p, env.Version+1
	}
	if ev, ok := fastPayload(env); ok {
		return ev, nil
	}
	ev := s.empty()
	dec := json.NewDecoder(bytes.NewReader(env.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ev); err != nil {
		return nil, fmt.Errorf("event %s: decode %s payload: %w", env.ID, env.Type, err)
	}
	return deref(ev), nil
}
