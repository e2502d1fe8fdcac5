package eventstore

import (
	"slices"
	"strconv"
	"testing"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// TestBatchWaves: wave j holds the j-th event of every aggregate, in the
// order given, so no aggregate ever has two events in one SendMessages and
// a failed wave holds back everything behind it.
func TestBatchWaves(t *testing.T) {
	p := &BatchPublisher{marshaler: newMarshaler()}
	var msgs []*message.Message
	for i, agg := range []string{"a", "a", "b", "a", "c", "b"} {
		m := message.NewMessage(strconv.Itoa(i), []byte("{}"))
		m.Metadata.Set(MetadataAggregateID, agg)
		msgs = append(msgs, m)
	}
	waves, err := p.waves("t", msgs)
	if err != nil {
		t.Fatal(err)
	}
	// aggregate/message uuid, per wave
	want := [][]string{{"a/0", "b/2", "c/4"}, {"a/1", "b/5"}, {"a/3"}}
	if len(waves) != len(want) {
		t.Fatalf("%d waves, want %d", len(waves), len(want))
	}
	for j, w := range waves {
		var got []string
		for _, r := range w {
			k, _ := r.Key.Encode()
			id := ""
			for _, h := range r.Headers {
				if string(h.Key) == kafka.UUIDHeaderKey {
					id = string(h.Value)
				}
			}
			got = append(got, string(k)+"/"+id)
		}
		if !slices.Equal(got, want[j]) {
			t.Errorf("wave %d = %v, want %v", j, got, want[j])
		}
	}
}
