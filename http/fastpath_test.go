package http

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// The hand-written purchase path (fastpath.go) must answer exactly as the
// general one does.

// samePurchaseDecoding fails if decodePurchase and decodeJSON disagree on body.
func samePurchaseDecoding(t *testing.T, body, contentType string, noBody bool) {
	t.Helper()
	req := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/v1/sales/s/purchase", strings.NewReader(body))
		if noBody {
			r.Body = http.NoBody
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		return r
	}
	var decoded purchaseRequest
	var want int64
	werr := decodeJSON(httptest.NewRecorder(), req(), &decoded, true)
	if werr == nil {
		want, werr = decoded.quantity()
	}
	got, err := decodePurchase(httptest.NewRecorder(), req())
	if got != want || !sameAPIError(err, werr) {
		t.Fatalf("body %q (%q): fast path %d, %v; general path %d, %v", body, contentType, got, err, want, werr)
	}
}

// sameAPIError reports whether a and b give the client the same answer.
func sameAPIError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y *apiError
	if errors.As(a, &x) && errors.As(b, &y) {
		return x.status == y.status && x.code == y.code && x.message == y.message
	}
	var v, u *domain.ValidationError
	return errors.As(a, &v) && errors.As(b, &u) && a.Error() == b.Error()
}

var purchaseBodies = []string{
	`{"quantity":1}`, `{"quantity":2}`, `{"quantity":0}`, `{"quantity":-1}`, `{"quantity":-0}`, `{"quantity":100}`,
	`{"quantity":101}`, `{"quantity":01}`, `{"quantity":1.0}`, `{"quantity":1e2}`, `{"quantity":"1"}`,
	`{"quantity":999999999999999999}`, `{"quantity":9999999999999999999}`, `{"quantity":-}`, `{"quantity":}`,
	`{"Quantity":1}`, `{"quantity":1,"x":2}`, `{"quantity":1}{"quantity":2}`, `{"quantity":1}}`, `{"quantity":1}]`, `{"quantity":1,"quantity":2}`,
	`{"quantity":1,"QUANTITY":50}`, `{"quantity":1,"x":"\xff"}`, "{\"quantity\":1,\"x\":\"\xff\"}", ` {"quantity":1} `, `{ "quantity": 1 }`,
	`{}`, ``, `   `, `null`, `[1]`, `{"quantity":null}`, `{"quantity":1`, "\x00", strings.Repeat("x", maxBody+1),
}

func TestPurchaseFastPath(t *testing.T) {
	for _, body := range purchaseBodies {
		for _, ct := range []string{"application/json", "application/json; charset=utf-8", "", "text/plain"} {
			samePurchaseDecoding(t, body, ct, false)
		}
	}
	samePurchaseDecoding(t, "", "application/json", true)
	if got, ok := canonicalQuantity([]byte(`{"quantity":1}`)); !ok || got != 1 {
		t.Fatalf(`canonicalQuantity({"quantity":1}) = %d, %v: the sale page's body must take the fast path`, got, ok)
	}
}

// FuzzDecodePurchase: decodePurchase answers every body as decodeJSON does.
func FuzzDecodePurchase(f *testing.F) {
	for _, b := range purchaseBodies {
		f.Add(b, "application/json")
	}
	f.Add(`{"quantity":1}`, "text/plain")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		if strings.ContainsAny(contentType, "\r\n") {
			return
		}
		samePurchaseDecoding(t, body, contentType, false)
	})
}

// fillReservation sets every exported field of a Reservation, failing on a
// kind it does not know, so a field added to Reservation shows up here.
func fillReservation(t *testing.T, seed int, s string, at time.Time) commands.Reservation {
	t.Helper()
	var res commands.Reservation
	v := reflect.ValueOf(&res).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.String:
			f.SetString(s + strings.Repeat("x", i))
		case f.Kind() == reflect.Int64:
			f.SetInt(int64(seed*7 - 3))
		case f.Kind() == reflect.Bool:
			f.SetBool(seed%2 == 0)
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(at))
		default:
			t.Fatalf("Reservation.%s has kind %s: teach appendReservation (http/fastpath.go) and this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	return res
}

func TestReservationJSON(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 11, 11, 20, 15, 3, 0, time.UTC),
		time.Date(2026, 11, 11, 20, 15, 3, 123000000, time.UTC),
		time.Date(2026, 11, 11, 20, 15, 3, 5, time.UTC),
		{},
		time.Date(2026, 11, 11, 20, 15, 3, 0, time.FixedZone("CST", 8*3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	fast := 0
	for seed, s := range []string{"", "s1-abc", "reserved", `q"uote`, "<&>", "é", "\x01", "bad\xff"} {
		for _, at := range times {
			res := fillReservation(t, seed, s, at)
			want, werr := json.Marshal(res)
			got, ok := appendReservation(nil, res)
			if !ok {
				continue
			}
			fast++
			if werr != nil || string(got) != string(want) {
				t.Fatalf("appendReservation(%+v) = %s; json.Marshal = %s, %v", res, got, want, werr)
			}
			w := httptest.NewRecorder()
			writeReservation(w, http.StatusAccepted, res)
			if w.Body.String() != string(want)+"\n" || w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("writeReservation wrote %q %v", w.Body.String(), w.Header())
			}
		}
	}
	if fast < 20 {
		t.Fatalf("only %d reservations took the fast path", fast)
	}
}
