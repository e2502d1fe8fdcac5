package domain

import (
	"encoding/json"
	"fmt"
)

// The upcasters of the codec (schemas in codec.go). Each one turns a payload of
// version N into version N+1 and nothing else; they never read anything but
// their argument, because every old event of the log is decoded through them
// forever. A new schema version adds an upcaster here, a case to
// testdata/corpus (go test ./commands -run TestRecordCorpus -record-corpus),
// and never edits an existing upcaster.

// upcastSaleCreatedV1 adds the currency v1 sales were priced in: every sale
// before v2 was in DefaultCurrency.
func upcastSaleCreatedV1(payload json.RawMessage) (json.RawMessage, error) {
	return withField(payload, "currency", DefaultCurrency)
}

// upcastOrderPlacedV1 is the identity: v2 added idempotency_key, optional, and
// a v1 order is read as placed without a key (the gate then did not record it).
func upcastOrderPlacedV1(payload json.RawMessage) (json.RawMessage, error) {
	return withField(payload, "", nil)
}

// withField returns payload (a JSON object) with key set to value unless the
// object already has it; an empty key only checks that payload is an object.
func withField(payload json.RawMessage, key string, value any) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return nil, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	if obj == nil {
		return nil, fmt.Errorf("payload is null")
	}
	if key == "" {
		return payload, nil
	}
	if _, ok := obj[key]; ok {
		return payload, nil
	}
	v, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	obj[key] = v
	return json.Marshal(obj)
}
