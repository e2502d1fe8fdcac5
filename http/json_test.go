package http

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/seckill/seckill/domain"
)

// TestDecodeRefusesWhatEncodingJSONTakes: bodies encoding/json would decode
// without a word, each read one way by us and maybe another by a proxy or
// the client, are refused with 400 malformed_json.
func TestDecodeRefusesWhatEncodingJSONTakes(t *testing.T) {
	tests := []struct{ name, body, message string }{
		{"stray closing brace", `{"payment_ref":"p"}}`, "single JSON object"},
		{"stray closing bracket", `{"payment_ref":"p"} ]`, "single JSON object"},
		{"second object", `{"payment_ref":"p"}{"payment_ref":"q"}`, "single JSON object"},
		{"null", `null`, "must be a JSON object"},
		{"string", `"p"`, "must be a JSON object"},
		{"duplicate field", `{"payment_ref":"p","payment_ref":"q"}`, `"payment_ref" is given more than once`},
		{"duplicate across case", `{"payment_ref":"p","PAYMENT_REF":"q"}`, `"PAYMENT_REF" is given more than once`},
		{"invalid UTF-8 in a string", "{\"payment_ref\":\"p\xff\"}", "must be UTF-8"},
		{"invalid UTF-8 in a key", "{\"payment_ref\xff\":\"p\"}", "must be UTF-8"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		var req payRequest
		err := decodeJSON(httptest.NewRecorder(), r, &req, false)
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.code != "malformed_json" || !strings.Contains(ae.message, tc.message) {
			t.Errorf("%s: %v, want 400 malformed_json %q", tc.name, err, tc.message)
		}
	}
	// Escaped control characters are valid JSON: they decode, and the
	// domain refuses them (domain.PaymentRef), naming the field.
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"payment_ref":"pay\u0000ref"}`))
	var req payRequest
	if err := decodeJSON(httptest.NewRecorder(), r, &req, false); err != nil || req.PaymentRef != "pay\x00ref" {
		t.Fatalf("escaped NUL: %q %v", req.PaymentRef, err)
	}
}

// TestPurchaseQuantityRules: an absent (or null) quantity is the default, an
// explicit 0 is refused — on the fast path and the general one alike.
func TestPurchaseQuantityRules(t *testing.T) {
	tests := []struct {
		body  string
		want  int64
		field string
	}{
		{``, 1, ""}, {`{}`, 1, ""}, {`{"quantity":null}`, 1, ""}, {`{"quantity":3}`, 3, ""}, {`{ "quantity": 3 }`, 3, ""},
		{`{"quantity":0}`, 0, "quantity"}, {`{ "quantity": 0 }`, 0, "quantity"}, {`{"quantity":-0}`, 0, "quantity"},
		{`{"quantity":101}`, 0, "quantity"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		r.Header.Set("Content-Type", "application/json")
		got, err := decodePurchase(httptest.NewRecorder(), r)
		var ve *domain.ValidationError
		switch {
		case tc.field == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %d %v, want %d", tc.body, got, err, tc.want)
		case tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field):
			t.Errorf("%q: %d %v, want refused on %s", tc.body, got, err, tc.field)
		}
	}
}
