package domain

import (
	"encoding/json"
	"strconv"
	"time"
)

// JSON without reflection for every event and for the envelope every reader
// parses. Each event's appender and reader are generated from its struct
// (codec_gen.go, by internal/codecgen: go generate ./domain), so a field is
// said once; this file holds the envelope and the primitives they share.
// encoding/json is reflection: per purchase the gate encoded two
// payloads and two envelopes (re-scanning each payload to compact it), and
// each projection decoded every envelope twice over (validate, then parse)
// — 10-15% of the CPU of a node that runs the API, the relay and the
// projections (docs/performance.md).
//
// The fast paths change no byte and no answer:
//   - appendEvent writes exactly what json.Marshal writes (same field order,
//     same escaping: any string that is not plain printable ASCII is handed to
//     json.Marshal); TestFastEncodeMatchesJSON fills every field of each type
//     by reflection and compares, and TestCodecGenerated fails when
//     codec_gen.go is not what the generator makes of today's structs.
//   - the readers accept only that canonical form (no whitespace, no escapes,
//     fields in order) and report false for anything else, which then goes
//     through encoding/json as before; FuzzFastDecode checks that whatever
//     they accept decodes to what encoding/json decodes.

// appendEvent appends e's envelope at time at and reports whether it could:
// false for types without a generated appender and for values json.Marshal
// would refuse (a time outside [0, 9999]), which the caller encodes the slow way.
func appendEvent(b []byte, e Event, at time.Time, md Metadata) ([]byte, bool) {
	t := e.EventType()
	version, known := CurrentVersion(t)
	if !known {
		return b, false
	}
	agg := e.AggregateID()
	b = append(b, `{"id":`...)
	b = appendString(b, EventID(agg, t))
	b = append(b, `,"type":`...)
	b = appendString(b, t)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(version), 10)
	b = append(b, `,"envelope":`...)
	b = strconv.AppendInt(b, CurrentEnvelopeVersion, 10)
	b = append(b, `,"occurred_at":`...)
	b, ok := appendTime(b, at.UTC())
	b = append(b, `,"aggregate_id":`...)
	b = appendString(b, agg)
	if !md.IsZero() {
		b = append(b, `,"metadata":`...)
		b = md.AppendJSON(b)
	}
	b = append(b, `,"payload":`...)
	b, pok := appendPayload(b, e)
	return append(b, '}'), ok && pok
}

// AppendJSON appends md as json.Marshal does (both fields omitempty): for
// writers of envelopes outside domain (the export) that skip reflection too.
func (md Metadata) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if md.CorrelationID != "" {
		b = append(b, `"correlation_id":`...)
		b = appendString(b, md.CorrelationID)
	}
	if md.CausationID != "" {
		if md.CorrelationID != "" {
			b = append(b, ',')
		}
		b = append(b, `"causation_id":`...)
		b = appendString(b, md.CausationID)
	}
	return append(b, '}')
}

// plainByte reports whether json.Marshal writes c as itself inside a string:
// printable ASCII except '"', '\\' and the HTML characters it escapes.
func plainByte(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// appendString appends s as json.Marshal does.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendTime appends t as time.Time.MarshalJSON does; false where that fails
// (a year outside [0, 9999], or a zone offset RFC 3339 cannot say).
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off != 0 {
		return b, false // rare; let MarshalJSON judge the offset
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// appendTimeOK is appendTime for a chain of appends: ok stays false once
// one of them failed.
func appendTimeOK(b []byte, t time.Time, ok bool) ([]byte, bool) {
	b, tok := appendTime(b, t)
	return b, ok && tok
}

// appendInt64s appends s as json.Marshal does: null for a nil slice.
func appendInt64s(b []byte, s []int64) []byte {
	return appendList(b, s, func(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) })
}

// appendStrings appends s as json.Marshal does: null for a nil slice.
func appendStrings(b []byte, s []string) []byte { return appendList(b, s, appendString) }

// appendList appends s as a JSON array of elem's values, null when nil.
func appendList[T any](b []byte, s []T, elem func([]byte, T) []byte) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, v)
	}
	return append(b, ']')
}

// canonReader reads JSON in exactly the shape the appenders above write.
// Any deviation clears ok; the caller then decodes with encoding/json.
type canonReader struct {
	b  []byte
	i  int
	ok bool
}

func (r *canonReader) lit(s string) {
	if !r.ok || len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		r.ok = false
		return
	}
	r.i += len(s)
}

// peek reports whether s comes next, without reading it.
func (r *canonReader) peek(s string) bool {
	return r.ok && len(r.b)-r.i >= len(s) && string(r.b[r.i:r.i+len(s)]) == s
}

// str reads a string of plain bytes (no escapes, ASCII only): exactly the
// strings encoding/json would decode to their own bytes.
func (r *canonReader) str() string {
	if !r.ok || r.i >= len(r.b) || r.b[r.i] != '"' {
		r.ok = false
		return ""
	}
	start := r.i + 1
	for j := start; j < len(r.b); j++ {
		c := r.b[j]
		if c == '"' {
			r.i = j + 1
			return string(r.b[start:j])
		}
		if c < 0x20 || c >= 0x7f || c == '\\' {
			break
		}
	}
	r.ok = false
	return ""
}

// int reads an integer that fits an int64: -?(0|[1-9][0-9]*), at most 18 digits.
func (r *canonReader) int() int64 {
	if !r.ok {
		return 0
	}
	j := r.i
	if j < len(r.b) && r.b[j] == '-' {
		j++
	}
	d := j
	for j < len(r.b) && r.b[j] >= '0' && r.b[j] <= '9' {
		j++
	}
	if n := j - d; n == 0 || n > 18 || (n > 1 && r.b[d] == '0') {
		r.ok = false
		return 0
	}
	v, err := strconv.ParseInt(string(r.b[r.i:j]), 10, 64)
	if err != nil {
		r.ok = false
		return 0
	}
	r.i = j
	return v
}

// bool reads true or false.
func (r *canonReader) bool() bool {
	switch {
	case r.peek("true"):
		r.i += 4
		return true
	case r.peek("false"):
		r.i += 5
		return false
	}
	r.ok = false
	return false
}

// int64s reads null (a nil slice) or an array of integers (a non-nil slice,
// empty for [], as encoding/json makes it).
func (r *canonReader) int64s() []int64 { return readList(r, r.int) }

// strs reads null or an array of plain strings (str), as int64s does.
func (r *canonReader) strs() []string { return readList(r, r.str) }

// readList reads null (a nil slice) or an array of elem's values (a
// non-nil slice, empty for []).
func readList[T any](r *canonReader, elem func() T) []T {
	if r.peek("null") {
		r.i += 4
		return nil
	}
	r.lit("[")
	out := []T{}
	if r.peek("]") {
		r.i++
		return out
	}
	for r.ok {
		out = append(out, elem())
		if r.peek(",") {
			r.i++
			continue
		}
		r.lit("]")
		break
	}
	if !r.ok {
		return nil
	}
	return out
}

// time reads a quoted time with the very parser encoding/json calls.
func (r *canonReader) time() time.Time {
	if !r.ok || r.i >= len(r.b) || r.b[r.i] != '"' {
		r.ok = false
		return time.Time{}
	}
	for j := r.i + 1; j < len(r.b); j++ {
		c := r.b[j]
		if c == '"' {
			var t time.Time
			if err := t.UnmarshalJSON(r.b[r.i : j+1]); err != nil {
				r.ok = false
				return time.Time{}
			}
			r.i = j + 1
			return t
		}
		if c < 0x20 || c >= 0x7f || c == '\\' {
			break
		}
	}
	r.ok = false
	return time.Time{}
}

// metadata reads the object Metadata.appendJSON writes: one or both fields,
// in order. {} (which the writer never writes) is left to encoding/json.
func (r *canonReader) metadata() Metadata {
	var md Metadata
	r.lit("{")
	if r.peek(`"correlation_id":`) {
		r.lit(`"correlation_id":`)
		md.CorrelationID = r.str()
		if r.peek(",") {
			r.lit(",")
			r.lit(`"causation_id":`)
			md.CausationID = r.str()
		}
	} else {
		r.lit(`"causation_id":`)
		md.CausationID = r.str()
	}
	r.lit("}")
	return md
}

// done reports whether everything was read and matched.
func (r *canonReader) done() bool { return r.ok && r.i == len(r.b) }

// fastEnvelope parses an envelope in the canonical form (the order and shape
// json.Marshal gives Envelope); false for anything else.
func fastEnvelope(data []byte) (Envelope, bool) {
	r := canonReader{b: data, ok: true}
	var env Envelope
	r.lit(`{"id":`)
	env.ID = r.str()
	r.lit(`,"type":`)
	env.Type = r.str()
	r.lit(`,"version":`)
	v := r.int()
	// v1 envelopes have neither "envelope" nor "metadata".
	var ev int64
	if r.peek(`,"envelope":`) {
		r.lit(`,"envelope":`)
		if ev = r.int(); ev == 0 {
			return Envelope{}, false // json.Marshal omits a zero
		}
	}
	r.lit(`,"occurred_at":`)
	env.OccurredAt = r.time()
	r.lit(`,"aggregate_id":`)
	env.AggregateID = r.str()
	if r.peek(`,"metadata":`) {
		r.lit(`,"metadata":`)
		env.Metadata = r.metadata()
	}
	r.lit(`,"payload":`)
	if !r.ok || len(data) < r.i+2 || data[len(data)-1] != '}' || v < 0 || v > 1<<30 || ev < 0 || ev > 1<<30 {
		return Envelope{}, false
	}
	env.Version, env.EnvelopeVersion = int(v), int(ev)
	payload := data[r.i : len(data)-1]
	// The payload is whatever lies between; encoding/json would have
	// insisted it is one valid JSON value, and so do we.
	// json.Valid allows whitespace around the value, which encoding/json
	// would leave out of the RawMessage: canonical has none.
	if payload[0] != '{' || payload[len(payload)-1] != '}' || !json.Valid(payload) {
		return Envelope{}, false
	}
	env.Payload = append(json.RawMessage(nil), payload...)
	return env, true
}

// fastPayload decodes env's payload when it is canonical (as appendPayload
// writes it); false for anything else (the caller decodes strictly with
// encoding/json). env must be at its type's current version: an upcast
// payload is re-encoded by the upcaster and so rarely canonical, and is left
// to encoding/json.
func fastPayload(env *Envelope) (Event, bool) {
	r := canonReader{b: env.Payload, ok: true}
	return readPayload(env.Type, &r)
}
