package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// maxBody bounds every request body: the API takes small JSON documents only.
const maxBody = 16 << 10

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encode response"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Header values shared by every JSON answer. net/http only reads them, so
// sharing saves two allocations on each (mostly sold_out) response.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// writeRaw writes a JSON body that is already encoded.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// decodeJSON reads a JSON object strictly: unknown fields, trailing data and
// bodies over maxBody are client errors. An empty body is allowed only when
// optional is true (dst keeps its zero value).
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return readError(err)
	}
	return decodeBody(r, body, dst, optional)
}

// readError is the client's answer to a body that could not be read.
func readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
			message: fmt.Sprintf("request body must be at most %d bytes", maxBody)}
	}
	return badRequest("malformed_json", "could not read request body")
}

// decodeBody is decodeJSON after the body has been read. Beyond what
// encoding/json refuses by itself, it refuses what encoding/json would take
// silently and a client (or a proxy in front of us) may read otherwise: a
// body that is not UTF-8 (encoding/json turns it into U+FFFD), a top level
// that is not an object (null would decode as {}), a field given twice (the
// last one would win, also across letter case), and anything after the
// object (a stray "}" passes Decoder.More).
func decodeBody(r *http.Request, body []byte, dst any, optional bool) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if optional {
			return nil
		}
		return badRequest("malformed_json", "request body must be a JSON object")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			message: "Content-Type must be application/json"}
	}
	if !utf8.Valid(body) {
		return badRequest("malformed_json", "request body must be UTF-8")
	}
	if trimmed[0] != '{' {
		return badRequest("malformed_json", "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badRequest("malformed_json", describeJSONError(err))
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return badRequest("malformed_json", "request body must hold a single JSON object")
	}
	if name, dup := duplicateField(body); dup {
		return badRequest("malformed_json", fmt.Sprintf("field %q is given more than once", name))
	}
	return nil
}

// duplicateField reports the first top-level field of the JSON object body
// that repeats an earlier one, compared as encoding/json matches field
// names (case-insensitively). It runs after a strict Decode succeeded, so
// every key is one of dst's few fields and a repeat comes within the first
// few keys.
func duplicateField(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the opening '{'
		return "", false
	}
	var seen []string
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return "", false
		}
		for _, k := range seen {
			if strings.EqualFold(k, key) {
				return key, true
			}
		}
		seen = append(seen, key)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}

func describeJSONError(err error) string {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
		}
		return "request body must be a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "invalid JSON"
}
