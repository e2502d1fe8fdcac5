package http

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
)

// openAPI is the OpenAPI 3 document of the REST API, written by hand: it is
// the contract clients code against, so it says what the routes promise
// rather than what some generator inferred. openapi_test.go keeps it and the
// router in step (every route documented, every documented path routed).
//
//go:embed openapi.json
var openAPI []byte

// openAPIHandler serves the document, compacted once at start (the file is
// indented for people; a client needs no whitespace).
func openAPIHandler() (http.HandlerFunc, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, openAPI); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	body := append(b.Bytes(), '\n')
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	}, nil
}
