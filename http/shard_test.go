package http

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
)

// TestCreateShardedSale: shards is an optional field of POST /v1/sales; the
// sale's view says how many and sums their pools; a purchase and its order
// read work as for any sale; a bad count is a 400 naming the field.
func TestCreateShardedSale(t *testing.T) {
	t.Parallel()
	api, _ := protectedAPI(t, nil, commands.GateConfig{SaleCacheTTL: time.Nanosecond})
	sale := api.createSaleJSON(t, 8, 0, `,"shards":4`)
	if sale["shards"] != 4.0 || sale["remaining"] != 8.0 {
		t.Fatalf("sale %v, want 4 shards and 8 remaining", sale)
	}
	plain := api.createSaleJSON(t, 8, 0, ``)
	if _, ok := plain["shards"]; ok {
		t.Errorf("an unsharded sale shows shards: %v", plain)
	}
	id := sale["id"].(string)
	w := api.call(t, "POST", "/v1/sales/"+id+"/purchase", `{"quantity":1}`, "Authorization", bearer(t, "alice", false))
	if w.Code != http.StatusAccepted {
		t.Fatalf("purchase: %d %s", w.Code, w.Body)
	}
	var res struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if shard, ok := domain.ShardOfOrder(res.OrderID); !ok || shard != domain.HomeShard("alice", 4) {
		t.Errorf("order %s not on alice's home shard", res.OrderID)
	}
	if w := api.call(t, "GET", "/v1/orders/"+res.OrderID, "", "Authorization", bearer(t, "alice", false)); w.Code != http.StatusOK {
		t.Errorf("read the order: %d %s", w.Code, w.Body)
	}
	w = api.call(t, "GET", "/v1/sales/"+id, "")
	if err := json.Unmarshal(w.Body.Bytes(), &sale); err != nil || sale["remaining"] != 7.0 {
		t.Errorf("sale after a purchase: %v %v", sale, err)
	}
	for _, extra := range []string{`,"shards":9`, `,"shards":65`, `,"shards":2,"release_step":1`} {
		w := api.call(t, "POST", "/v1/sales", `{"name":"x","stock":8,"price_cents":1,"starts_at":"2026-11-11T20:00:00Z","ends_at":"2026-11-11T21:00:00Z"`+extra+`}`,
			"Authorization", bearer(t, "admin", true))
		if w.Code != http.StatusBadRequest || errCodeOf(t, w) == "" {
			t.Errorf("%s: %d %s, want 400", extra, w.Code, w.Body)
		}
	}
}
