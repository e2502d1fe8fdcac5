package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

// The generated codec (fastjson.go, codec_gen.go) must be invisible: the same bytes as
// encoding/json when writing, the same values when reading, and a refusal
// (falling back to encoding/json) for anything it does not know exactly.

// fastTypes are the events with generated appenders and readers: all of them.
var fastTypes = func() []Event {
	var out []Event
	for _, t := range slices.Sorted(maps.Keys(schemas)) {
		out = append(out, deref(schemas[t].empty()))
	}
	return out
}()

// slowEncode is EncodeWith without the fast path.
func slowEncode(e Event, at time.Time, md ...Metadata) ([]byte, error) {
	env, err := NewEnvelope(e, at)
	if err != nil {
		return nil, err
	}
	if len(md) > 0 {
		env.Metadata = md[0]
	}
	return json.Marshal(env)
}

// metadatas are the envelope metadata the samples cycle through: none,
// either field alone, both, and awkward strings.
var metadatas = []Metadata{{}, {CorrelationID: "4bf92f3577b34da6a3ce929d0e0e4736", CausationID: "host/abc-000001"},
	{CorrelationID: "c"}, {CausationID: "o-1/OrderPlaced"}, {CorrelationID: `quo"te`, CausationID: "日本"}}

// slowEnvelope and slowPayload are DecodeEnvelope and DecodePayload without
// the fast paths (before the checks both share).
func slowEnvelope(data []byte) (Envelope, error) {
	var env Envelope
	err := json.Unmarshal(data, &env)
	return env, err
}

func slowPayload(env Envelope) (Event, error) {
	ev := schemas[env.Type].empty()
	dec := json.NewDecoder(bytes.NewReader(env.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ev); err != nil {
		return nil, err
	}
	return deref(ev), nil
}

// strings that exercise every escaping rule of encoding/json.
var awkward = []string{"", "o-1", "sale_42", `quo"te`, `back\slash`, "<html>&", "tab\there", "nl\n", "ctl\x01",
	"é", "日本", "\u2028", "bad\xffutf8", "~!@#$%^*()", "x/y"}

var times = []time.Time{
	time.Date(2026, 11, 11, 20, 0, 3, 0, time.UTC),
	time.Date(2026, 11, 11, 20, 0, 3, 123456789, time.UTC),
	time.Date(2026, 11, 11, 20, 0, 3, 120000000, time.UTC),
	time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CST", 8*3600)),
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // json.Marshal refuses it
}

// fill sets every field of the struct v points to from seed, so that a field
// added to an event shows up in the comparison. It fails on a field kind it
// does not know, so that a new kind is noticed too.
func fill(t *testing.T, v reflect.Value, seed int) {
	t.Helper()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(awkward[(seed+i)%len(awkward)])
		case reflect.Int64, reflect.Int:
			f.SetInt(int64((seed+1)*(i+1)) * []int64{1, -1, 1 << 40}[seed%3])
		case reflect.Bool:
			f.SetBool((seed+i)%2 == 0)
		case reflect.Slice:
			switch f.Type().Elem().Kind() {
			case reflect.Int64:
				f.Set(reflect.ValueOf([]int64{int64(seed), 2}))
			case reflect.String:
				f.Set(reflect.ValueOf([]string{awkward[seed%len(awkward)], awkward[(seed+i)%len(awkward)]}))
			default:
				t.Fatalf("fill: %s.%s: slice of %s", v.Type(), v.Type().Field(i).Name, f.Type().Elem())
			}
		case reflect.Struct:
			if f.Type() == reflect.TypeOf(time.Time{}) {
				f.Set(reflect.ValueOf(times[(seed+i)%len(times)]))
				continue
			}
			fill(t, f, seed)
		default:
			t.Fatalf("fill: %s.%s has kind %s", v.Type(), v.Type().Field(i).Name, f.Kind())
		}
	}
}

func fastSamples(t *testing.T) []Event {
	var out []Event
	for _, typ := range fastTypes {
		out = append(out, typ) // every field zero
		for seed := range 40 {
			p := reflect.New(reflect.TypeOf(typ))
			fill(t, p.Elem(), seed)
			out = append(out, p.Elem().Interface().(Event))
		}
	}
	return out
}

func TestFastEncodeMatchesJSON(t *testing.T) {
	fast := 0
	for i, ev := range fastSamples(t) {
		at, md := times[i%len(times)], metadatas[i%len(metadatas)]
		want, werr := slowEncode(ev, at, md)
		got, ok := appendEvent(nil, ev, at, md)
		if !ok {
			continue // the slow path decides; Encode below must agree with it
		}
		fast++
		if werr != nil {
			t.Fatalf("%T %+v: the appender wrote %s where json.Marshal fails: %v", ev, ev, got, werr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%T: the generated encoder (domain/codec_gen.go) differs from encoding/json; "+
				"after changing an event run go generate ./domain:\n got %s\nwant %s", ev, got, want)
		}
	}
	if fast < len(fastTypes)*20 {
		t.Fatalf("only %d samples took the fast path", fast)
	}
	for i, ev := range fastSamples(t) {
		at, md := times[i%len(times)], metadatas[i%len(metadatas)]
		want, werr := slowEncode(ev, at, md)
		got, err := EncodeWith(ev, at, md)
		if (err != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("Encode(%T) = %s, %v; want %s, %v", ev, got, err, want, werr)
		}
	}
}

// TestFastDecodeTakesWhatEncodeWrites checks that what the gate writes is
// read on the fast path, and read as encoding/json reads it.
func TestFastDecodeTakesWhatEncodeWrites(t *testing.T) {
	for i, ev := range fastSamples(t) {
		raw, err := EncodeWith(ev, times[i%2], metadatas[i%len(metadatas)])
		if err != nil {
			continue
		}
		plain := true
		for _, c := range raw {
			plain = plain && c >= 0x20 && c < 0x7f && c != '\\'
		}
		env, ok := fastEnvelope(raw)
		if plain && !ok {
			t.Fatalf("fast path refused the envelope Encode wrote: %s", raw)
		}
		checkSameAsJSON(t, raw)
		if !ok {
			continue
		}
		if _, ok := fastPayload(&env); !ok && plain {
			t.Fatalf("fast path refused the payload Encode wrote: %s", raw)
		}
	}
}

// checkSameAsJSON fails if a fast reader accepts data and reads it other than
// encoding/json does.
func checkSameAsJSON(t *testing.T, data []byte) {
	t.Helper()
	env, ok := fastEnvelope(data)
	if !ok {
		return
	}
	want, err := slowEnvelope(data)
	if err != nil {
		t.Fatalf("fast envelope reader accepted what encoding/json refuses (%v): %q", err, data)
	}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("envelope %q:\n fast %#v\n json %#v", data, env, want)
	}
	if _, known := schemas[env.Type]; !known {
		return
	}
	ev, ok := fastPayload(&env)
	if !ok {
		return
	}
	wantEv, err := slowPayload(env)
	if err != nil {
		t.Fatalf("fast payload reader accepted what encoding/json refuses (%v): %q", err, env.Payload)
	}
	if !reflect.DeepEqual(ev, wantEv) {
		t.Fatalf("payload %q:\n fast %#v\n json %#v", env.Payload, ev, wantEv)
	}
}

// FuzzFastDecode: whatever the fast readers accept, they read as encoding/json does.
//
//	go test ./domain -run '^$' -fuzz FuzzFastDecode -fuzztime 30s
func FuzzFastDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.json")
	for _, name := range files {
		if raw, err := os.ReadFile(name); err == nil {
			f.Add(bytes.TrimSpace(raw))
		}
	}
	at := time.Date(2026, 11, 11, 20, 0, 3, 5, time.UTC)
	for _, ev := range []Event{
		StockReserved{SaleID: "s1", OrderID: "s1-abc", UserID: "u1", Quantity: 2},
		OrderPlaced{OrderID: "s1-abc", SaleID: "s1", UserID: "u1", Quantity: 2, PriceCents: 100, AmountCents: 200, PayBy: at, IdempotencyKey: "k"},
		OrderPaid{OrderID: "s1-abc", SaleID: "s1", UserID: "u1", Quantity: 2, AmountCents: 200, PaymentRef: "p"},
	} {
		raw, err := Encode(ev, at)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		if raw, err = EncodeWith(ev, at, metadatas[1]); err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"id":"a","type":"OrderPaid","version":1,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","payload":{"order_id":"a"},"x":1}`))
	f.Add([]byte(`{"id":"a","type":"StockReserved","version":1,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","payload":{"sale_id":"s","order_id":"o","user_id":"u","quantity":01}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAsJSON(t, data)
	})
}

// TestFastDecodeRefusals lists inputs the fast readers must leave to
// encoding/json (which reads or rejects them its own way).
func TestFastDecodeRefusals(t *testing.T) {
	const env = `{"id":"o/StockReserved","type":"StockReserved","version":1,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"o","payload":%s}`
	for _, payload := range []string{
		`{"sale_id":"s","order_id":"o","user_id":"u","quantity":1,"extra":1}`,
		`{"sale_id":"s","order_id":"o","user_id":"u","quantity":1.0}`,
		`{"sale_id":"s","order_id":"o","user_id":"u","quantity":01}`,
		`{"sale_id":"s","order_id":"o","user_id":"u","quantity":1} `,
		`{"SALE_ID":"s","order_id":"o","user_id":"u","quantity":1}`,
		`{"sale_id":"s\u0041","order_id":"o","user_id":"u","quantity":1}`,
		`{"order_id":"o","sale_id":"s","user_id":"u","quantity":1}`,
		`{"sale_id":"s","order_id":"o","user_id":"u"}`,
	} {
		raw := fmt.Sprintf(env, payload)
		checkSameAsJSON(t, []byte(raw))
		e, ok := fastEnvelope([]byte(raw))
		if !ok {
			continue // refused already: invalid JSON, or not canonical
		}
		if ev, ok := fastPayload(&e); ok {
			t.Errorf("fast path read %s as %+v; it must leave it to encoding/json", payload, ev)
		}
	}
	for _, raw := range []string{
		`{"id":"a","type":"T","version":1,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","payload":{"a":1},"b":2}`,
		`{"id":"a","type":"T","version":1,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","payload":{"a":}}`,
		`{"id":"a","type":"T","version":1,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","payload":{}} `,
		`{"id":"a","type":"T","version":1,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","payload":{} }`,
		`{"id":"a","type":"T","version":1,"aggregate_id":"a","payload":{}}`,
		`{"id":"a","type":"T","version":1,"occurred_at":"2026-13-01T00:00:00Z","aggregate_id":"a","payload":{}}`,
		`{"id":"a\"","type":"T","version":1,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","payload":{}}`,
		`{"id":"a","type":"T","version":1,"envelope":0,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","payload":{}}`,
		`{"id":"a","type":"T","version":1,"envelope":2,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","metadata":{},"payload":{}}`,
		`{"id":"a","type":"T","version":1,"envelope":2,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","metadata":{"causation_id":"x","correlation_id":"y"},"payload":{}}`,
		`{"id":"a","type":"T","version":1,"envelope":2,"occurred_at":"2026-01-01T00:00:00Z","aggregate_id":"a","metadata":{"correlation_id":"y","x":1},"payload":{}}`,
	} {
		if e, ok := fastEnvelope([]byte(raw)); ok {
			t.Errorf("fast path read %s as %+v; it must leave it to encoding/json", raw, e)
		}
	}
}

// BenchmarkCodec: the two events of a purchase, encoded by the gate and
// decoded by each projection, on the hand-written path and on encoding/json.
//
//	go test ./domain -run '^$' -bench Codec -benchmem
func BenchmarkCodec(b *testing.B) {
	at := time.Date(2026, 11, 11, 20, 0, 3, 123456789, time.UTC)
	evs := []Event{
		StockReserved{SaleID: "d4m2kq3zx7a1b", OrderID: "d4m2kq3zx7a1b-q7xk2m4n5p6r3", UserID: "user-123456", Quantity: 1},
		OrderPlaced{OrderID: "d4m2kq3zx7a1b-q7xk2m4n5p6r3", SaleID: "d4m2kq3zx7a1b", UserID: "user-123456", Quantity: 1,
			PriceCents: 19900, AmountCents: 19900, PayBy: at.Add(15 * time.Minute)},
	}
	var raws [][]byte
	for _, ev := range evs {
		raw, err := Encode(ev, at)
		if err != nil {
			b.Fatal(err)
		}
		raws = append(raws, raw)
	}
	b.Run("encode/fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, ev := range evs {
				if _, err := Encode(ev, at); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("encode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, ev := range evs {
				if _, err := slowEncode(ev, at); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("decode/fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, raw := range raws {
				if _, _, err := Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("decode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, raw := range raws {
				env, err := slowEnvelope(raw)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := slowPayload(env); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
