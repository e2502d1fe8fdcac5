package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The inventory-return feed through `seckill serve`: a sale ends with units
// left, an order reserved before the end expires after it, and the everyday
// system pulling GET /v1/inventory/returns with its cursor gets both hand-
// backs once each; `seckill audit` finds the feed equal to the log.
func TestInventoryReturnsEndToEnd(t *testing.T) {
	s := startSystem(t)
	sale := s.createSale(5, `,"pay_within_s":2`)
	paid := s.buy(sale, "alice")
	if r := s.do("POST", "/v1/orders/"+paid+"/pay", s.token("alice"), `{"payment_ref":"pay-a"}`); r.status != http.StatusOK {
		t.Fatalf("pay: %d %s", r.status, r.raw)
	}
	late := s.buy(sale, "bob") // never paid: expires after the end
	if r := s.do("POST", "/v1/sales/"+sale+"/end", s.admin, ""); r.status != http.StatusOK {
		t.Fatalf("end: %d %s", r.status, r.raw)
	}

	type ret struct {
		EventID  string `json:"event_id"`
		SaleID   string `json:"sale_id"`
		OrderID  string `json:"order_id"`
		Reason   string `json:"reason"`
		Quantity int64  `json:"quantity"`
	}
	var got []ret
	cursor := ""
	deadline := time.Now().Add(45 * time.Second)
	for len(got) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after 45s the feed holds %+v; want the unsold pool and bob's late expiry", got)
		}
		r := s.do("GET", "/v1/inventory/returns?limit=1&cursor="+url.QueryEscape(cursor), s.admin, "")
		if r.status != http.StatusOK {
			t.Fatalf("pull: %d %s", r.status, r.raw)
		}
		var page struct {
			Returns []ret  `json:"returns"`
			Cursor  string `json:"cursor"`
			More    bool   `json:"more"`
		}
		if err := json.Unmarshal([]byte(r.raw), &page); err != nil {
			t.Fatal(err)
		}
		for _, x := range page.Returns {
			if x.SaleID == sale {
				got = append(got, x)
			}
		}
		cursor = page.Cursor
		if !page.More {
			time.Sleep(200 * time.Millisecond)
		}
	}
	want := map[string]ret{
		"unsold":            {SaleID: sale, Reason: "unsold", Quantity: 3},
		"expired_after_end": {SaleID: sale, OrderID: late, Reason: "expired_after_end", Quantity: 1},
	}
	for _, x := range got {
		w, ok := want[x.Reason]
		x.EventID = ""
		if !ok || x != w {
			t.Errorf("return %+v, want one of %+v", x, want)
		}
		delete(want, x.Reason)
	}
	// Pulling again from the last cursor: nothing new.
	if r := s.do("GET", "/v1/inventory/returns?cursor="+url.QueryEscape(cursor), s.admin, ""); !strings.Contains(r.raw, `"returns":[]`) {
		t.Errorf("pull after the end of the feed: %s", r.raw)
	}
	out, _, err := s.cli("audit", "--wait", "30s")
	if err != nil || !strings.Contains(out, "read model daily") {
		t.Fatalf("audit: %v\n%s", err, out)
	}
}
