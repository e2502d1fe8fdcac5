package http

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/seckill/seckill/commands"
)

// The purchase request and its answer without reflection. A flash sale is
// the purchase call and little else, so its body ({"quantity":1} from the
// sale page) and its answer (a Reservation) are read and written by hand;
// anything else takes the general path (decodeBody, writeJSON) with the very
// same rules, and TestPurchaseFastPath and FuzzDecodePurchase hold the two
// to the same answers (docs/performance.md).

// bodyBufs holds read buffers for request bodies that are decoded and
// dropped within the handler.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// decodePurchase reads a purchase request as decodeJSON(w, r, &req, true)
// does and returns its quantity (purchaseRequest.quantity): an empty body is
// a purchase of the default quantity.
func decodePurchase(w http.ResponseWriter, r *http.Request) (int64, error) {
	var req purchaseRequest
	if r.Body == nil || r.Body == http.NoBody {
		return req.quantity()
	}
	bp := bodyBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 4096 {
			bodyBufs.Put(bp)
		}
	}()
	body, err := readInto((*bp)[:0], http.MaxBytesReader(w, r.Body, maxBody))
	*bp = body
	if err != nil {
		return 0, readError(err)
	}
	if q, ok := canonicalQuantity(body); ok && isJSONContent(r) {
		req.Quantity = &q
		return req.quantity()
	}
	if err := decodeBody(r, body, &req, true); err != nil {
		return 0, err
	}
	return req.quantity()
}

// readInto appends everything r has to b (io.ReadAll into a given buffer).
func readInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// isJSONContent is decodeBody's Content-Type rule: absent, or JSON.
func isJSONContent(r *http.Request) bool {
	ct := r.Header["Content-Type"]
	return len(ct) == 0 || ct[0] == "" || (len(ct[0]) >= len("application/json") && ct[0][:len("application/json")] == "application/json")
}

// canonicalQuantity reads exactly {"quantity":N}, N an integer of at most 18
// digits without leading zeros: the bodies encoding/json decodes to that N
// and nothing else. Anything else (spaces, other fields, other spellings)
// reports false and goes to the strict decoder.
func canonicalQuantity(b []byte) (int64, bool) {
	const pre, post = `{"quantity":`, `}`
	if len(b) < len(pre)+len(post)+1 || string(b[:len(pre)]) != pre || b[len(b)-1] != '}' {
		return 0, false
	}
	num := b[len(pre) : len(b)-1]
	digits := num
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if num[0] == '-' {
		n = -n
	}
	return n, true
}

// writeReservation answers a purchase: writeJSON(w, status, res), by hand.
func writeReservation(w http.ResponseWriter, status int, res commands.Reservation) {
	b, ok := appendReservation(make([]byte, 0, 192), res)
	if !ok {
		writeJSON(w, status, res)
		return
	}
	writeRaw(w, status, append(b, '\n'))
}

// appendReservation appends res as json.Marshal does; false where it cannot
// promise the same bytes (a time json.Marshal would refuse or a zone offset).
func appendReservation(b []byte, res commands.Reservation) ([]byte, bool) {
	b = append(b, `{"order_id":`...)
	b = appendJSONString(b, res.OrderID)
	b = append(b, `,"sale_id":`...)
	b = appendJSONString(b, res.SaleID)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, res.Status)
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, res.Quantity, 10)
	b = append(b, `,"pay_by":`...)
	if y := res.PayBy.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := res.PayBy.Zone(); off != 0 {
		return b, false
	}
	b = append(b, '"')
	b = res.PayBy.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...), true
}

// appendJSONString appends s as json.Marshal does: plain printable ASCII as
// is, anything that needs escaping through json.Marshal itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
