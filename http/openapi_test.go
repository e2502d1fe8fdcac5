package http

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/projections"
)

// openAPIDoc is the part of the document the tests read.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

var docMethods = []string{"get", "head", "post", "put", "patch", "delete", "options"}

// TestOpenAPIMatchesRouter walks the router with every optional route on and
// checks that each route is documented with its method, and that each
// documented operation is routed: a route added without its documentation,
// or documentation left behind by a removed route, fails here.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	eventLog, err := eventstore.NewLog(eventstore.LogConfig{Brokers: testenv.Kafka(t, 1), Topic: testenv.Topic})
	if err != nil {
		t.Fatal(err)
	}
	api := newTestAPI(t, func(c *Config) {
		c.Events = eventLog
		c.DevSignIn = true
		c.Registry = prometheus.NewRegistry()
		c.Projections = testMonitor(t)
		c.DeadLetters = projections.DeadLetterSet{}
	})
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}

	routed := map[string]bool{} // "GET /v1/sales/{id}"
	err = chi.Walk(api.h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		path := docPath(route)
		routed[method+" "+path] = true
		op, ok := doc.Paths[path][strings.ToLower(method)]
		if !ok {
			t.Errorf("route %s %s (pattern %s) is not in openapi.json", method, path, route)
			return nil
		}
		checkOperation(t, method+" "+path, op)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths {
		for key := range item {
			if !slices.Contains(docMethods, key) {
				continue // parameters, summary ...
			}
			if !routed[strings.ToUpper(key)+" "+path] {
				t.Errorf("openapi.json documents %s %s, which the router does not have", strings.ToUpper(key), path)
			}
		}
	}
	if len(routed) < 20 {
		t.Errorf("walked only %d routes; is the walk seeing the subrouters?", len(routed))
	}
	checkRefs(t, doc)
}

// docPath turns a chi pattern into an OpenAPI path: "/assets/*" is
// "/assets/{path}", a trailing slash of a mounted subrouter goes.
func docPath(route string) string {
	if p, ok := strings.CutSuffix(route, "/*"); ok {
		return p + "/{path}"
	}
	if route != "/" {
		route = strings.TrimSuffix(route, "/")
	}
	return route
}

// checkOperation checks what every operation must say: its responses, and
// a schema or reference for each JSON answer.
func checkOperation(t *testing.T, name string, raw json.RawMessage) {
	t.Helper()
	var op struct {
		OperationID string                     `json:"operationId"`
		Summary     string                     `json:"summary"`
		Responses   map[string]json.RawMessage `json:"responses"`
		Security    []map[string][]string      `json:"security"`
	}
	if err := json.Unmarshal(raw, &op); err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if op.OperationID == "" || op.Summary == "" || len(op.Responses) == 0 {
		t.Errorf("%s: needs an operationId, a summary and its responses", name)
	}
	// A route behind authentication documents the bearer scheme and its 401.
	if len(op.Security) > 0 {
		if _, ok := op.Responses["401"]; !ok {
			t.Errorf("%s: secured but documents no 401", name)
		}
	}
}

var refRE = regexp.MustCompile(`"\$ref":\s*"#/components/([a-zA-Z]+)/([A-Za-z0-9_]+)"`)

// checkRefs checks that every $ref names a component that exists.
func checkRefs(t *testing.T, doc openAPIDoc) {
	t.Helper()
	for _, m := range refRE.FindAllStringSubmatch(string(openAPI), -1) {
		if _, ok := doc.Components[m[1]][m[2]]; !ok {
			t.Errorf("openapi.json: $ref %s/%s names no component", m[1], m[2])
		}
	}
}

// TestOpenAPIServed checks the document is served as JSON.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t, nil)
	w := api.call(t, "GET", "/openapi.json", "")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	var doc openAPIDoc
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || doc.Paths["/v1/sales/{id}/purchase"] == nil {
		t.Errorf("served document: %v, %d paths", err, len(doc.Paths))
	}
}
