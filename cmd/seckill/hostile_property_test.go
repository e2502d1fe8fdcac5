package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"pgregory.net/rapid"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/readmodels"
)

// TestHostileInput is the property of issue 15: whatever the gate accepts,
// every projection applies. rapid drives random and hostile requests — text
// with control characters and invalid UTF-8, odd ids, huge and fractional
// numbers, wrong JSON types, duplicate fields, trailing data, odd headers
// and token subjects — through the real HTTP API of a whole system (Redis,
// Postgres, the Kafka broker, relay, projections), and holds it to:
//
//   - no answer is a 5xx, and every refusal is a 4xx with a JSON error;
//   - the log holds exactly the events of the 2xx answers: none missing, and
//     none that a 4xx (or a replayed 2xx) wrote;
//   - every projection applied them: the orders, inventory and daily read
//     models agree with the answers, with no dead letter;
//   - `seckill audit` is clean.
//
// The per-request properties shrink to a minimal failing sequence; the
// whole-system ones are checked once at the end. Bounded: rapid's 100
// sequences of up to 20 requests (20 with -short; -rapid.checks=N for more),
// seconds of requests and one verification.
func TestHostileInput(t *testing.T) {
	s := startSystem(t)
	m := newHostileModel(s)
	m.createValidSale(t)
	begin := time.Now()
	rapid.Check(t, func(rt *rapid.T) {
		for range rapid.IntRange(1, 20).Draw(rt, "requests") {
			m.step(rt)
		}
	})
	t.Logf("hostile input: %d requests in %v: %v", m.requests, time.Since(begin).Round(time.Millisecond), m.statuses)
	m.verify(t)
}

// hostileModel is what the clients were told, and so what the log and the
// read models must hold.
type hostileModel struct {
	s        *system
	events   map[string]bool // envelope ids (aggregate/type) the 2xx answers stand for
	sales    map[string]*modelSale
	saleIDs  []string
	orders   map[string]*modelOrder
	orderIDs []string
	requests int
	statuses map[int]int
}

type modelSale struct {
	name                 string
	ended                bool
	reservedQty, paidQty int64
	orders               []string
}

type modelOrder struct {
	sale, user string
	qty        int64
	ref        string // the payment reference, "" while unpaid
}

func newHostileModel(s *system) *hostileModel {
	return &hostileModel{s: s, events: map[string]bool{}, sales: map[string]*modelSale{},
		orders: map[string]*modelOrder{}, statuses: map[int]int{}}
}

var hostileUsers = []string{"h0", "h1", "h2", "h3", "h4", "h5"}

// step sends one random request and checks its answer against the model.
func (m *hostileModel) step(rt *rapid.T) {
	switch rapid.SampledFrom([]string{"create", "purchase", "purchase", "purchase", "pay", "pay", "read", "end", "block", "token"}).Draw(rt, "call") {
	case "create":
		m.createSale(rt)
	case "purchase":
		m.purchase(rt)
	case "pay":
		m.pay(rt)
	case "read":
		m.read(rt)
	case "end":
		m.end(rt)
	case "block":
		m.block(rt)
	case "token":
		m.oddToken(rt)
	}
}

// send makes one request and holds every answer to the API's rules: never a
// 5xx, and every refusal a JSON error with a code. ok is false when Go's
// client refused to send it (a header it will not write).
func (m *hostileModel) send(rt *rapid.T, method, path, token, body string, hdr ...string) (response, bool) {
	req, err := http.NewRequest(method, m.s.base+path, strings.NewReader(body))
	if err != nil {
		return response{}, false
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "invalid header") || strings.Contains(err.Error(), "invalid URL") {
			return response{}, false
		}
		rt.Fatalf("%s %q: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	m.requests++
	m.statuses[r.status]++
	switch {
	case r.status >= 500:
		rt.Fatalf("%s %q %q: %d %s — a 5xx for a client's request", method, path, body, r.status, r.raw)
	case r.status >= 400 && r.errCode() == "":
		rt.Fatalf("%s %q %q: %d %q without a JSON error", method, path, body, r.status, r.raw)
	}
	return r, true
}

// hostileText is text for a sale name or a payment reference: plain, any
// Unicode (controls included), or one of the strings that poisoned the log.
func hostileText(rt *rapid.T, label string) string {
	return rapid.OneOf(
		rapid.StringMatching(`[A-Za-z0-9 _-]{1,24}`),
		rapid.StringN(0, 40, -1),
		rapid.SampledFrom([]string{
			"pay\x00ref", "a\tb", "line\nbreak", "del\x7f", "nel\u0085x", "esc\x1b[31m", "\xff\xfe", "trunc\xe7\xa7",
			"\xed\xa0\x80", "\u202eevil", "秒杀 📱", `quote " and \ backslash`, "<script>&amp;", "\uFFFD", "",
			"   ", strings.Repeat("x", 129), strings.Repeat("秒", 201), strings.Repeat("ab", 5000),
		}),
	).Draw(rt, label)
}

// jsonString writes s as a JSON string the way a client might: escaped by a
// JSON encoder (controls as \u00XX, invalid UTF-8 as U+FFFD), or raw (the
// bytes as they are, which may not even be JSON), or with a lone surrogate.
func jsonString(rt *rapid.T, s, label string) string {
	switch rapid.SampledFrom([]string{"encoded", "encoded", "raw", "surrogate"}).Draw(rt, label) {
	case "raw":
		return `"` + s + `"`
	case "surrogate":
		return `"` + s + `\ud800"`
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// hostileInt is a JSON number or not: in range, out of range, past int64,
// fractional, a string, null.
func hostileInt(rt *rapid.T, lo, hi int64, label string) string {
	return rapid.OneOf(
		rapid.Map(rapid.Int64Range(lo, hi), func(n int64) string { return strconv.FormatInt(n, 10) }),
		rapid.Map(rapid.Int64(), func(n int64) string { return strconv.FormatInt(n, 10) }),
		rapid.SampledFrom([]string{"0", "-1", "9223372036854775807", "-9223372036854775808", "92233720368547758070",
			"1.5", "1e3", "1.0", `"7"`, "null", "true", "[]", "{}", "9007199254740993"}),
	).Draw(rt, label)
}

// hostileID is a path segment: a known id or an odd one, escaped or not.
func (m *hostileModel) hostileID(rt *rapid.T, known []string, label string) string {
	odd := rapid.SampledFrom([]string{"%FF", "%00", "%C3%A9", "a%20b", "%2E%2E", "-", "_", strings.Repeat("a", 65),
		"x-", "nosuch", "%25", "a%2Fb"}).Draw(rt, label+"_odd")
	if len(known) == 0 || rapid.IntRange(0, 3).Draw(rt, label+"_pick") == 0 {
		if rapid.Bool().Draw(rt, label+"_escape") {
			return url.PathEscape(rapid.StringN(1, 10, -1).Draw(rt, label+"_text"))
		}
		return odd
	}
	id := rapid.SampledFrom(known).Draw(rt, label)
	if rapid.IntRange(0, 5).Draw(rt, label+"_mangle") == 0 {
		return id + odd
	}
	return id
}

// createValidSale makes sure there is a sale to buy in.
func (m *hostileModel) createValidSale(t *testing.T) {
	t.Helper()
	start, end := m.window()
	body := fmt.Sprintf(`{"name":"open","stock":1000,"price_cents":100,"per_user_limit":3,"starts_at":%q,"ends_at":%q}`, start, end)
	r := m.s.do("POST", "/v1/sales", m.s.admin, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create sale: %d %s", r.status, r.raw)
	}
	m.saleCreated(r)
}

// window is a sale window that is open now and outlasts the test, so that
// no sweeper writes events the answers do not stand for.
func (m *hostileModel) window() (string, string) {
	now := time.Now().UTC()
	return now.Add(-time.Minute).Format(time.RFC3339), now.Add(2 * time.Hour).Format(time.RFC3339)
}

func (m *hostileModel) saleCreated(r response) {
	id := r.str("id")
	m.sales[id] = &modelSale{name: r.str("name")}
	m.saleIDs = append(m.saleIDs, id)
	m.events[id+"/"+domain.TypeSaleCreated] = true
}

// createSale posts a sale whose fields are valid but for a few that may be
// hostile. Values that would make events no answer stands for (an expiry
// inside the test, the window closing, shards that move stock) are never
// among the valid ones.
func (m *hostileModel) createSale(rt *rapid.T) {
	start, end := m.window()
	valid := map[string]string{
		"name": `"sale"`, "stock": "20", "price_cents": "100", "per_user_limit": "3",
		"starts_at": strconv.Quote(start), "ends_at": strconv.Quote(end),
	}
	hostile := map[string]func() string{
		"name":           func() string { return jsonString(rt, hostileText(rt, "name"), "name_enc") },
		"stock":          func() string { return hostileInt(rt, 1, 50, "stock") },
		"price_cents":    func() string { return hostileInt(rt, 0, 1_000_000, "price") },
		"per_user_limit": func() string { return hostileInt(rt, 1, 3, "limit") },
		"starts_at": func() string {
			return rapid.SampledFrom([]string{`"0001-01-01T00:00:01Z"`, `"9999-12-31T23:59:59-23:59"`, `"yesterday"`, `1`, `null`, strconv.Quote(end)}).Draw(rt, "starts")
		},
		"ends_at": func() string {
			return rapid.SampledFrom([]string{`"9999-12-31T23:59:59Z"`, `"2000-01-01T00:00:00Z"`, `""`, `"2026-13-45T00:00:00Z"`}).Draw(rt, "ends")
		},
		"pay_within_s": func() string {
			return rapid.SampledFrom([]string{"900", "0", "-1", "86401", "9223372036854775807", "1.5"}).Draw(rt, "pay_within")
		},
		"currency": func() string {
			return rapid.SampledFrom([]string{`"EUR"`, `"eur"`, `"EURO"`, `"E\u0000R"`, "\"\xff\xfeA\"", `1`}).Draw(rt, "currency")
		},
		"user_interval_ms": func() string { return hostileInt(rt, 0, 2000, "user_interval") },
		"release_step":     func() string { return hostileInt(rt, 0, 10, "release_step") },
		"require_token": func() string {
			return rapid.SampledFrom([]string{"true", "false", `"yes"`, "1"}).Draw(rt, "require_token")
		},
		"shards": func() string { return rapid.SampledFrom([]string{"1", "0", "-1", "1000000", `"2"`}).Draw(rt, "shards") },
		"nope":   func() string { return "1" },
	}
	names := []string{"name", "stock", "price_cents", "per_user_limit", "starts_at", "ends_at", "pay_within_s",
		"currency", "user_interval_ms", "release_step", "require_token", "shards", "nope"}
	for range rapid.IntRange(0, 2).Draw(rt, "mutations") {
		f := rapid.SampledFrom(names).Draw(rt, "mutate")
		valid[f] = hostile[f]()
	}
	var fields []string
	for _, f := range names {
		if v, ok := valid[f]; ok {
			fields = append(fields, strconv.Quote(f)+":"+v)
		}
	}
	if rapid.IntRange(0, 8).Draw(rt, "duplicate") == 0 {
		fields = append(fields, fields[rapid.IntRange(0, len(fields)-1).Draw(rt, "dup_field")])
	}
	body := "{" + strings.Join(fields, ",") + "}" + rapid.SampledFrom([]string{"", "", "", "", " ", "}", "{}", "\x00"}).Draw(rt, "trailer")
	r, _ := m.send(rt, "POST", "/v1/sales", m.s.admin, body, "Content-Type", hostileContentType(rt))
	if r.status == http.StatusCreated {
		m.saleCreated(r)
	}
}

// hostileContentType is mostly JSON.
func hostileContentType(rt *rapid.T) string {
	return rapid.SampledFrom([]string{"application/json", "application/json", "application/json", "",
		"application/json; charset=utf-8", "text/plain", "application/jsonx"}).Draw(rt, "content_type")
}

// purchase buys with a hostile body, key and sale id.
func (m *hostileModel) purchase(rt *rapid.T) {
	user := rapid.SampledFrom(hostileUsers).Draw(rt, "user")
	sale := m.hostileID(rt, m.saleIDs, "sale")
	body := rapid.OneOf(
		rapid.SampledFrom([]string{"", "{}", `{"quantity":1}`, `{"quantity":2}`, `{"quantity":null}`, `{ "quantity" : 1 }`}),
		rapid.SampledFrom([]string{"", `{"quantity":1}`}),
		rapid.SampledFrom([]string{`{"quantity":0}`, `{"quantity":-0}`, `{"quantity":-1}`, `{"quantity":101}`, `{"quantity":1e0}`, `{"quantity":"1"}`,
			`{"quantity":1}}`, `{"quantity":1} x`, `{"quantity":1,"quantity":3}`, `{"quantity":1,"QUANTITY":3}`, `{"Quantity":2}`,
			`null`, `[]`, `"x"`, "\xff", `{"quantity":1,"x":1}`, `{"quantity":18446744073709551617}`}),
		rapid.Map(rapid.Int64(), func(n int64) string { return fmt.Sprintf(`{"quantity":%d}`, n) }),
	).Draw(rt, "body")
	key := rapid.OneOf(
		rapid.Just(""),
		rapid.Just(""),
		rapid.StringMatching(`[ -~]{1,40}`),
		rapid.SampledFrom([]string{"k\xff", "clé", "秒", strings.Repeat("k", 129), "k\u00a0"}),
	).Draw(rt, "idempotency_key")
	var hdr []string
	if key != "" {
		hdr = append(hdr, "Idempotency-Key", key)
	}
	hdr = append(hdr, "Content-Type", hostileContentType(rt))
	r, sent := m.send(rt, "POST", "/v1/sales/"+sale+"/purchase", m.s.token(user), body, hdr...)
	if sent {
		m.purchased(rt, r, sale, user)
	}
}

// purchased takes a purchase's answer into the model: a 202 is a new order
// of a sale we created, a 200 the replay of one of the user's orders.
func (m *hostileModel) purchased(rt *rapid.T, r response, sale, user string) {
	id := r.str("order_id")
	switch r.status {
	case http.StatusAccepted:
		ms, ok := m.sales[r.str("sale_id")]
		if !ok || m.orders[id] != nil || r.str("sale_id") != sale {
			rt.Fatalf("purchase in %s answered 202 %s: not a new order of a sale we created", sale, r.raw)
		}
		qty := int64(r.body["quantity"].(float64))
		m.orders[id] = &modelOrder{sale: sale, user: user, qty: qty}
		m.orderIDs = append(m.orderIDs, id)
		ms.reservedQty += qty
		ms.orders = append(ms.orders, id)
		m.events[id+"/"+domain.TypeStockReserved] = true
		m.events[id+"/"+domain.TypeOrderPlaced] = true
	case http.StatusOK:
		if o := m.orders[id]; o == nil || o.user != user || o.sale != sale {
			rt.Fatalf("purchase in %s by %s answered 200 %s: a replay of an order that is not theirs", sale, user, r.raw)
		}
	}
}

// pay pays a known order (or an odd id) with a hostile reference, as its
// owner or someone else.
func (m *hostileModel) pay(rt *rapid.T) {
	id := m.hostileID(rt, m.orderIDs, "order")
	user := rapid.SampledFrom(hostileUsers).Draw(rt, "payer")
	if o := m.orders[id]; o != nil && rapid.IntRange(0, 3).Draw(rt, "owner") > 0 {
		user = o.user
	}
	body := `{"payment_ref":` + jsonString(rt, hostileText(rt, "ref"), "ref_enc") + "}"
	r, _ := m.send(rt, "POST", "/v1/orders/"+id+"/pay", m.s.token(user), body)
	if r.status != http.StatusOK {
		return
	}
	o := m.orders[id]
	switch {
	case o == nil || o.user != user:
		rt.Fatalf("pay %s as %s answered 200 %s: not their order", id, user, r.raw)
	case o.ref == "":
		o.ref = r.str("payment_ref")
		if err := domain.ValidateText("payment_ref", o.ref, domain.MaxPaymentRefLen); err != nil || o.ref == "" {
			rt.Fatalf("pay %s answered 200 with a reference the log cannot hold: %q (%v)", id, o.ref, err)
		}
		ms := m.sales[o.sale]
		ms.paidQty += o.qty
		m.events[id+"/"+domain.TypeOrderPaid] = true
	case o.ref != r.str("payment_ref"):
		rt.Fatalf("pay %s again answered 200 %s, but it was paid with %q", id, r.raw, o.ref)
	}
}

// read asks every read call with odd ids and parameters.
func (m *hostileModel) read(rt *rapid.T) {
	user := m.s.token(rapid.SampledFrom(hostileUsers).Draw(rt, "reader"))
	q := url.QueryEscape(rapid.OneOf(rapid.StringN(0, 12, -1), rapid.SampledFrom([]string{"10", "0", "-1", "99999999999999999999", "1.5"})).Draw(rt, "query"))
	paths := []struct{ path, token string }{
		{"/v1/orders/" + m.hostileID(rt, m.orderIDs, "read_order"), user},
		{"/v1/sales/" + m.hostileID(rt, m.saleIDs, "read_sale"), ""},
		{"/v1/sales/" + m.hostileID(rt, m.saleIDs, "inv_sale") + "/inventory", m.s.admin},
		{"/v1/sales/" + m.hostileID(rt, m.saleIDs, "tok_sale") + "/token", user},
		{"/v1/users/me/orders?limit=" + q, user},
		{"/v1/sales?limit=" + q, ""},
		{"/v1/reports/daily?from=" + q + "&to=" + q, m.s.admin},
		{"/v1/admin/blacklist", m.s.admin},
	}
	p := rapid.SampledFrom(paths).Draw(rt, "read_path")
	m.send(rt, "GET", p.path, p.token, "")
}

// end ends a sale (rarely: an ended sale takes no purchases).
func (m *hostileModel) end(rt *rapid.T) {
	if rapid.IntRange(0, 3).Draw(rt, "really_end") > 0 {
		m.send(rt, "POST", "/v1/sales/"+m.hostileID(rt, nil, "end_odd")+"/end", m.s.admin, "")
		return
	}
	id := m.hostileID(rt, m.saleIDs, "end_sale")
	r, _ := m.send(rt, "POST", "/v1/sales/"+id+"/end", m.s.admin, "")
	if ms := m.sales[id]; r.status == http.StatusOK && ms != nil && !ms.ended {
		ms.ended = true
		m.events[id+"/"+domain.TypeSaleEnded] = true
	}
}

// block puts an odd user id on the blacklist and takes it off again.
func (m *hostileModel) block(rt *rapid.T) {
	user := rapid.OneOf(rapid.StringN(0, 70, -1), rapid.SampledFrom([]string{"h5", "a\x00", "\xff", "bob"})).Draw(rt, "blocked")
	b, _ := json.Marshal(map[string]string{"user_id": user})
	m.send(rt, "POST", "/v1/admin/blacklist", m.s.admin, string(b))
	m.send(rt, "DELETE", "/v1/admin/blacklist/"+url.PathEscape(user), m.s.admin, "")
}

// oddToken presents a correctly signed token whose subject is hostile: it
// must be refused (401), never become a user id in an event.
func (m *hostileModel) oddToken(rt *rapid.T) {
	sub := rapid.OneOf(rapid.StringN(0, 70, -1), rapid.SampledFrom([]string{"a\x00b", "\xff", "", strings.Repeat("u", 65)})).Draw(rt, "sub")
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		rt.Fatal(err)
	}
	sale := m.hostileID(rt, m.saleIDs, "odd_token_sale")
	r, _ := m.send(rt, "POST", "/v1/sales/"+sale+"/purchase", tok, `{"quantity":1}`)
	if r.status < 400 && !domain.ValidID(sub) {
		rt.Fatalf("a token for subject %q was accepted: %d %s", sub, r.status, r.raw)
	}
	m.purchased(rt, r, sale, sub)
}

// verify checks the whole system against the model once every request is
// answered: the audit, the log's exact content, every read model.
func (m *hostileModel) verify(t *testing.T) {
	t.Helper()
	if out, errOut, err := m.s.cli("audit", "--wait", "60s"); err != nil {
		t.Errorf("audit: %v\n%s%s", err, out, errOut)
	}
	logged := map[string]bool{}
	for _, e := range m.s.exportLines("") {
		logged[e.ID] = true
	}
	for id := range m.events {
		if !logged[id] {
			t.Errorf("event %s, which a 2xx answer stands for, is not in the log", id)
		}
	}
	for id := range logged {
		if !m.events[id] {
			t.Errorf("event %s is in the log, but no 2xx answer stands for it", id)
		}
	}
	pool := m.s.pool()
	if n := deadLetters(t, pool); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	for _, id := range m.orderIDs {
		o := m.orders[id]
		want, daily := domain.StatusReserved+"/", readmodels.DailyPendingPayment+"/"
		if o.ref != "" {
			want, daily = domain.StatusPaid+"/"+o.ref, readmodels.DailyPaid+"/"+o.ref
		}
		waitRow(t, pool, `SELECT status || '/' || payment_ref FROM orders WHERE order_id = $1`, id, want)
		waitRow(t, pool, `SELECT status || '/' || payment_ref FROM daily_orders WHERE order_no = $1`, id, daily)
	}
	for _, id := range m.saleIDs {
		ms := m.sales[id]
		waitRow(t, pool, `SELECT name FROM sales WHERE id = $1`, id, ms.name)
		waitRow(t, pool, `SELECT reserved_qty::text || '/' || paid_qty::text FROM inventory WHERE sale_id = $1`,
			id, fmt.Sprintf("%d/%d", ms.reservedQty, ms.paidQty))
	}
	if !t.Failed() {
		t.Logf("hostile input: %d sales, %d orders (%d paid), %d events in the log, all applied",
			len(m.saleIDs), len(m.orderIDs), countPaid(m.orders), len(logged))
	}
}

func countPaid(orders map[string]*modelOrder) int {
	n := 0
	for _, o := range orders {
		if o.ref != "" {
			n++
		}
	}
	return n
}
