package loadgen

import "testing"

func TestErrorCode(t *testing.T) {
	for body, want := range map[string]string{
		`{"error":{"code":"sold_out","message":"sold out"}}` + "\n": "sold_out",
		`{"error":{"message":"x","code":"rate_limited"}}`:           "rate_limited",
		`{"error": {"code": "ended"}}`:                              "ended",
		`{"error":{"code":"a\"b"}}`:                                 `a"b`,
		`{"order_id":"x"}`:                                          "",
		`not json`:                                                  "",
		``:                                                          "",
	} {
		if got := errorCode([]byte(body)); got != want {
			t.Errorf("errorCode(%q) = %q, want %q", body, got, want)
		}
	}
}
