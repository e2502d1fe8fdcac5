package domain_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/seckill/seckill/domain"
)

// FuzzDecode feeds arbitrary bytes to the log decoder. Nothing may panic, and
// whatever decodes must survive a round trip: re-encoding the event and
// decoding it again gives the same event, so no record can decode to
// something the codec cannot write back.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.json")
	for _, file := range files {
		if raw, err := os.ReadFile(file); err == nil {
			f.Add(raw)
		}
	}
	f.Add([]byte(`{"id":"s-1/OrderPaid","type":"OrderPaid","version":1,"occurred_at":"2026-11-11T20:00:00Z","aggregate_id":"s-1","payload":{}}`))
	f.Add([]byte(`{"id":"x","type":"SaleCreated","version":99,"occurred_at":"2026-11-11T20:00:00Z","aggregate_id":"x","payload":{"stock":1}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, ev, err := domain.Decode(data)
		if err != nil {
			return
		}
		again, err := domain.Encode(ev, env.OccurredAt)
		if err != nil {
			t.Fatalf("decoded %T but cannot encode it: %v", ev, err)
		}
		_, ev2, err := domain.Decode(again)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
		if !reflect.DeepEqual(ev, ev2) {
			t.Fatalf("round trip changed the event:\n %#v\n %#v", ev, ev2)
		}
	})
}
