package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// cli runs one seckill command in-process with the system's environment.
func (s *system) cli(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = run(context.Background(), args, func(k string) string { return s.env[k] }, &out, &errb)
	return out.String(), errb.String(), err
}

// buy purchases one unit and returns the order id.
func (s *system) buy(sale, user string, hdr ...string) string {
	s.t.Helper()
	r := s.do("POST", "/v1/sales/"+sale+"/purchase", s.token(user), `{"quantity":1}`, hdr...)
	if r.status != http.StatusAccepted {
		s.t.Fatalf("purchase by %s: %d %s", user, r.status, r.raw)
	}
	return r.str("order_id")
}

// exportLines GETs the admin export and decodes every NDJSON line.
func (s *system) exportLines(query string) []domain.Envelope {
	s.t.Helper()
	r := s.do("GET", "/v1/admin/events?"+query, s.admin, "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" {
		s.t.Fatalf("export %s: %d %s %s", query, r.status, r.header.Get("Content-Type"), r.raw)
	}
	var out []domain.Envelope
	sc := bufio.NewScanner(strings.NewReader(r.raw))
	for sc.Scan() {
		env, _, err := domain.Decode(sc.Bytes())
		if err != nil {
			s.t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		out = append(out, env)
	}
	return out
}

func types(envs []domain.Envelope) map[string]int {
	m := map[string]int{}
	for _, e := range envs {
		m[e.Type]++
	}
	return m
}

// TestLogTools runs a sale on the whole system, then uses the log as a tool:
// the audit passes, the export (HTTP and CLI) returns what happened, Redis is
// wiped and `seckill gate restore` brings the gate back so that it answers
// exactly as before, and a planted event makes the audit fail.
func TestLogTools(t *testing.T) {
	s := startSystem(t)
	ctx := context.Background()

	// Currency: optional, validated, shown.
	if r := s.do("POST", "/v1/sales", s.admin, `{"name":"x","stock":1,"starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z","currency":"eur"}`); r.status != http.StatusBadRequest || !strings.Contains(r.raw, "currency") {
		t.Errorf("lowercase currency: %d %s", r.status, r.raw)
	}
	sale := s.createSale(5, `,"currency":"EUR","per_user_limit":2`)
	if r := s.do("GET", "/v1/sales/"+sale, "", ""); r.str("currency") != "EUR" {
		t.Errorf("sale view: %s", r.raw)
	}
	quick := s.createSale(3, `,"pay_within_s":1`)
	if r := s.do("GET", "/v1/sales/"+quick, "", ""); r.str("currency") != "CNY" {
		t.Errorf("default currency: %s", r.raw)
	}

	alice := s.buy(sale, "alice")
	bob := s.buy(sale, "bob", "Idempotency-Key", "k1", "X-Request-Id", "req-bob",
		"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	carol := s.buy(sale, "carol")
	if r := s.do("POST", "/v1/orders/"+alice+"/pay", s.token("alice"), `{"payment_ref":"pay-a"}`); r.status != http.StatusOK {
		t.Fatalf("pay: %d %s", r.status, r.raw)
	}
	dave := s.buy(quick, "dave")
	deadline := time.Now().Add(20 * time.Second)
	for s.do("GET", "/v1/orders/"+dave, s.token("dave"), "").str("status") != domain.StatusExpired {
		if time.Now().After(deadline) {
			t.Fatal("dave's reservation did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The audit holds on a clean log.
	out, _, err := s.cli("audit", "--wait", "30s")
	if err != nil || !strings.Contains(out, "all invariants hold") {
		t.Fatalf("audit of a clean system: %v\n%s", err, out)
	}

	// The export: everything of a sale, then a time range inside it.
	all := s.exportLines("sale=" + sale)
	if got := types(all); got[domain.TypeSaleCreated] != 1 || got[domain.TypeOrderPlaced] != 3 || got[domain.TypeStockReserved] != 3 || got[domain.TypeOrderPaid] != 1 || len(all) != 8 {
		t.Fatalf("export of sale %s: %v", sale, got)
	}
	// Tracing (envelope v2): a request's events carry its ids; events
	// caused by another event say which.
	for _, e := range all {
		if e.AggregateID == bob && e.Metadata != (domain.Metadata{CorrelationID: "0af7651916cd43dd8448eb211c80319c", CausationID: "req-bob"}) {
			t.Errorf("%s: metadata %+v, want bob's trace id and request id", e.ID, e.Metadata)
		}
		if e.Metadata.CorrelationID == "" || e.Metadata.CausationID == "" {
			t.Errorf("%s: no correlation or causation: %+v", e.ID, e.Metadata)
		}
	}
	for _, e := range s.exportLines("order=" + dave) {
		want := map[string]string{domain.TypeOrderExpired: domain.EventID(dave, domain.TypeOrderPlaced),
			domain.TypeStockReleased: domain.EventID(dave, domain.TypeOrderExpired)}[e.Type]
		if want != "" && (e.Metadata.CausationID != want || !strings.HasPrefix(e.Metadata.CorrelationID, "sweep-")) {
			t.Errorf("%s: metadata %+v, want caused by %s in a sweep", e.ID, e.Metadata, want)
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i].OccurredAt.Before(all[i-1].OccurredAt) {
			t.Errorf("export out of time order: %s after %s", all[i].ID, all[i-1].ID)
		}
	}
	from, to := all[2].OccurredAt, all[5].OccurredAt
	var want []string
	for _, e := range all {
		if !e.OccurredAt.Before(from) && e.OccurredAt.Before(to) {
			want = append(want, e.ID)
		}
	}
	var got []string
	for _, e := range s.exportLines("sale=" + sale + "&from=" + url.QueryEscape(from.Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339Nano))) {
		got = append(got, e.ID)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("range [%s, %s): %v, want %v", from, to, got, want)
	}
	if r := s.do("GET", "/v1/admin/events", s.token("alice"), ""); r.status != http.StatusForbidden {
		t.Errorf("export by a user: %d", r.status)
	}
	if r := s.do("GET", "/v1/admin/events?from=noon", s.admin, ""); r.status != http.StatusBadRequest {
		t.Errorf("export with a bad from: %d %s", r.status, r.raw)
	}
	if r := s.do("GET", "/v1/admin/events?type=Nope", s.admin, ""); r.status != http.StatusBadRequest {
		t.Errorf("export with a bad type: %d %s", r.status, r.raw)
	}
	// The CLI: CSV into a file, and a type filter on stdout.
	file := filepath.Join(t.TempDir(), "quick.csv")
	if _, _, err := s.cli("events", "--sale", quick, "--format", "csv", "--out", file); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) != 6 || rows[0][0] != "occurred_at" {
		t.Errorf("csv of sale %s: %v %q", quick, err, rows)
	}
	out, errOut, err := s.cli("events", "--type", "OrderPaid")
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, alice) || !strings.Contains(errOut, "1 events matched") {
		t.Errorf("events --type OrderPaid: %v\n%s\n%s", err, out, errOut)
	}
	if _, _, err := s.cli("events", "--type", "Nope"); exitCode(err) != 2 {
		t.Errorf("events --type Nope: %v (exit %d), want a usage error", err, exitCode(err))
	}

	// Redis is lost. The node stops (ops restore before taking traffic);
	// the gate comes back from the log.
	remaining := s.do("GET", "/v1/sales/"+sale, "", "").body["remaining"]
	s.shutdown()
	opt, err := redis.ParseURL(s.env["SECKILL_REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	out, _, err = s.cli("gate", "restore")
	if err != nil || !strings.Contains(out, "restored 2 sale(s)") {
		t.Fatalf("gate restore: %v\n%s", err, out)
	}
	// The audit above saved a fold snapshot at the log's end: the restore
	// started from it and read nothing after it.
	if !strings.Contains(out, "from snapshot ") || !strings.Contains(out, "and 0 records after it") {
		t.Errorf("gate restore did not start from the audit's snapshot:\n%s", out)
	}
	if out, _, err := s.cli("snapshot"); err != nil || !strings.Contains(out, "saved ") {
		t.Errorf("seckill snapshot: %v\n%s", err, out)
	}
	t.Log("\n" + out)
	if _, _, err := s.cli("gate", "restore"); err == nil || !strings.Contains(err.Error(), "still holds") {
		t.Errorf("second restore without --force: %v", err)
	}
	s.start()
	if r := s.do("GET", "/v1/sales/"+sale, "", ""); r.body["remaining"] != remaining || r.str("currency") != "EUR" {
		t.Errorf("restored sale: %s, want remaining %v", r.raw, remaining)
	}
	for _, tc := range []struct {
		user, order string
		hdr         []string
	}{{"alice", alice, nil}, {"bob", bob, []string{"Idempotency-Key", "k1"}}, {"carol", carol, nil}, {"dave", dave, nil}} {
		target := sale
		if tc.user == "dave" {
			target = quick
		}
		r := s.do("POST", "/v1/sales/"+target+"/purchase", s.token(tc.user), `{"quantity":1}`, tc.hdr...)
		if r.status != http.StatusOK || r.str("order_id") != tc.order {
			t.Errorf("retry by %s after restore: %d %s, want 200 with %s", tc.user, r.status, r.raw, tc.order)
		}
	}
	if r := s.do("POST", "/v1/orders/"+carol+"/pay", s.token("carol"), `{"payment_ref":"pay-c"}`); r.status != http.StatusOK {
		t.Errorf("pay a restored reservation: %d %s", r.status, r.raw)
	}
	if r := s.do("POST", "/v1/orders/"+dave+"/pay", s.token("dave"), `{"payment_ref":"pay-d"}`); r.status != http.StatusConflict || r.errCode() != "expired" {
		t.Errorf("pay an expired order after restore: %d %s", r.status, r.raw)
	}
	out, _, err = s.cli("audit", "--wait", "30s")
	if err != nil {
		t.Fatalf("audit after restore: %v\n%s", err, out)
	}

	// A planted event: an order nobody reserved, written straight into the
	// log. The audit names it and fails with exit status 1.
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(s.env["SECKILL_KAFKA_BROKERS"], ",")...),
		kgo.DefaultProduceTopic(defaultTopic), kgo.RecordPartitioner(eventstore.Partitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	planted := domain.OrderID(sale, "planted")
	v, err := domain.Encode(domain.OrderPlaced{OrderID: planted, SaleID: sale, UserID: "mallory", Quantity: 1, PayBy: time.Now().Add(time.Hour)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(planted), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out, _, err = s.cli("audit", "--wait", "30s")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "order "+planted+": placed without a StockReserved") ||
		!strings.Contains(out, "order "+planted+" (sale "+sale+", reserved): in the log but not in the gate") {
		t.Errorf("audit of a planted order: %v\n%s", err, out)
	}
	t.Log("\n" + out)
}
