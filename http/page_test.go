package http

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// assetRef finds the asset URLs an HTML shell refers to.
var assetRef = regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)

func TestPageShells(t *testing.T) {
	api := newTestAPI(t, nil)
	index := api.call(t, "GET", "/", "")
	saleA := api.call(t, "GET", "/sale/saleA", "")
	saleB := api.call(t, "GET", "/sale/another-sale_2", "")
	for name, w := range map[string]*httptest.ResponseRecorder{"/": index, "/sale/saleA": saleA, "/sale/another-sale_2": saleB} {
		res := w.Result()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", name, res.StatusCode)
		}
		for h, want := range map[string]string{
			"Content-Type":            "text/html; charset=utf-8",
			"Cache-Control":           cacheShell,
			"X-Content-Type-Options":  "nosniff",
			"Content-Security-Policy": pageCSP,
		} {
			if got := res.Header.Get(h); got != want {
				t.Errorf("GET %s: %s = %q, want %q", name, h, got, want)
			}
		}
		if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(res.Header.Get("ETag")) {
			t.Errorf("GET %s: ETag %q is not a strong quoted hash", name, res.Header.Get("ETag"))
		}
	}
	// One static shell for every sale: the script reads the id from the address.
	if !bytes.Equal(saleA.Body.Bytes(), saleB.Body.Bytes()) || saleA.Header().Get("ETag") != saleB.Header().Get("ETag") {
		t.Error("/sale/{id} differs between ids; it must be the same static page")
	}
	if bytes.Equal(index.Body.Bytes(), saleA.Body.Bytes()) {
		t.Error("/ serves the sale page; want the index")
	}
	// Every asset a shell refers to is versioned, served, and immutable.
	for name, w := range map[string][]byte{"/": index.Body.Bytes(), "/sale": saleA.Body.Bytes()} {
		refs := assetRef.FindAllStringSubmatch(string(w), -1)
		if len(refs) < 3 {
			t.Fatalf("%s refers to %d assets, want the stylesheet, scripts and icon", name, len(refs))
		}
		for _, m := range refs {
			url := m[1]
			if !regexp.MustCompile(`^/assets/[a-z]+\.[0-9a-f]{12}\.(css|js|svg)$`).MatchString(url) {
				t.Errorf("%s refers to %s, which is not a versioned asset URL", name, url)
				continue
			}
			res := api.call(t, "GET", url, "").Result()
			if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != cacheImmutable {
				t.Errorf("GET %s: %d, Cache-Control %q; want 200 and %q", url, res.StatusCode, res.Header.Get("Cache-Control"), cacheImmutable)
			}
		}
	}
}

func TestPageAssets(t *testing.T) {
	api := newTestAPI(t, nil)
	shell := api.call(t, "GET", "/sale/x", "").Body.String()
	versioned := func(name string) string {
		stem, ext, _ := strings.Cut(name, ".")
		for _, m := range assetRef.FindAllStringSubmatch(shell, -1) {
			if strings.HasPrefix(m[1], "/assets/"+stem+".") && strings.HasSuffix(m[1], "."+ext) {
				return m[1]
			}
		}
		t.Fatalf("the sale page does not refer to %s", name)
		return ""
	}
	tests := []struct {
		path, contentType, cache string
	}{
		{versioned("app.css"), "text/css; charset=utf-8", cacheImmutable},
		{versioned("sale.js"), "text/javascript; charset=utf-8", cacheImmutable},
		{versioned("common.js"), "text/javascript; charset=utf-8", cacheImmutable},
		{versioned("favicon.svg"), "image/svg+xml", cacheImmutable},
		{"/assets/app.css", "text/css; charset=utf-8", cacheAsset},
		{"/assets/sale.js", "text/javascript; charset=utf-8", cacheAsset},
	}
	for _, tc := range tests {
		w := api.call(t, "GET", tc.path, "")
		h := w.Header()
		if w.Code != http.StatusOK || h.Get("Content-Type") != tc.contentType || h.Get("Cache-Control") != tc.cache ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("ETag") == "" {
			t.Errorf("GET %s: %d, Content-Type %q, Cache-Control %q, ETag %q; want 200, %q, %q, an ETag",
				tc.path, w.Code, h.Get("Content-Type"), h.Get("Cache-Control"), h.Get("ETag"), tc.contentType, tc.cache)
		}
		if h.Get("Content-Security-Policy") != "" {
			t.Errorf("GET %s: CSP on an asset; it belongs on the HTML", tc.path)
		}
	}
	// The versioned and the plain URL are the same bytes.
	if a, b := api.call(t, "GET", versioned("sale.js"), "").Body.String(), api.call(t, "GET", "/assets/sale.js", "").Body.String(); a != b || a == "" {
		t.Error("versioned and plain URLs of sale.js differ")
	}
	for _, path := range []string{"/assets/sale.000000000000.js", "/assets/nope.js", "/assets/", "/assets/../server.go"} {
		w := api.call(t, "GET", path, "")
		if w.Code != http.StatusNotFound || errCodeOf(t, w) != "not_found" {
			t.Errorf("GET %s: %d %s; want 404 not_found", path, w.Code, w.Body)
		}
	}
	if w := api.call(t, "POST", "/sale/x", "{}"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /sale/x: %d, want 405", w.Code)
	}
}

func TestPageConditionalAndHead(t *testing.T) {
	api := newTestAPI(t, nil)
	for _, path := range []string{"/", "/sale/abc", "/assets/app.css"} {
		first := api.call(t, "GET", path, "")
		etag := first.Header().Get("ETag")
		for _, inm := range []string{etag, "W/" + etag, `"nope", ` + etag, "*"} {
			w := api.call(t, "GET", path, "", "If-None-Match", inm)
			if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
				t.Errorf("GET %s If-None-Match %s: %d with %d bytes, want 304 and none", path, inm, w.Code, w.Body.Len())
			}
			if w.Header().Get("ETag") != etag || w.Header().Get("Cache-Control") == "" {
				t.Errorf("GET %s If-None-Match %s: 304 without ETag or Cache-Control", path, inm)
			}
		}
		if w := api.call(t, "GET", path, "", "If-None-Match", `"stale"`); w.Code != http.StatusOK || w.Body.Len() == 0 {
			t.Errorf("GET %s with a stale ETag: %d, want 200 with the body", path, w.Code)
		}
		head := api.call(t, "HEAD", path, "")
		if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("ETag") != etag ||
			head.Header().Get("Content-Length") != first.Header().Get("Content-Length") {
			t.Errorf("HEAD %s: %d, %d bytes, ETag %q, length %q; want 200, no body, the GET's ETag and length",
				path, head.Code, head.Body.Len(), head.Header().Get("ETag"), head.Header().Get("Content-Length"))
		}
	}
}

func TestPageGzip(t *testing.T) {
	api := newTestAPI(t, nil)
	for _, path := range []string{"/sale/abc", "/assets/sale.js"} {
		plain := api.call(t, "GET", path, "")
		gz := api.call(t, "GET", path, "", "Accept-Encoding", "br, gzip;q=0.8")
		if gz.Header().Get("Content-Encoding") != "gzip" || !slices.Contains(gz.Header().Values("Vary"), "Accept-Encoding") {
			t.Fatalf("GET %s with gzip: Content-Encoding %q, Vary %q", path, gz.Header().Get("Content-Encoding"), gz.Header().Values("Vary"))
		}
		if plain.Header().Get("Content-Encoding") != "" || !slices.Contains(plain.Header().Values("Vary"), "Accept-Encoding") {
			t.Errorf("GET %s without gzip: Content-Encoding %q, Vary %q", path, plain.Header().Get("Content-Encoding"), plain.Header().Values("Vary"))
		}
		// Two encodings are two representations: they must not share an ETag.
		if gz.Header().Get("ETag") == plain.Header().Get("ETag") {
			t.Errorf("GET %s: gzip and identity share ETag %s", path, gz.Header().Get("ETag"))
		}
		zr, err := gzip.NewReader(gz.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(body, plain.Body.Bytes()) {
			t.Errorf("GET %s: gzip body does not decode to the plain body (%v)", path, err)
		}
		if w := api.call(t, "GET", path, "", "Accept-Encoding", "gzip", "If-None-Match", gz.Header().Get("ETag")); w.Code != http.StatusNotModified {
			t.Errorf("GET %s gzip If-None-Match: %d, want 304", path, w.Code)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := map[string]bool{
		"":                     false,
		"gzip":                 true,
		"GZIP":                 true,
		"gzip, deflate, br":    true,
		"br;q=1.0, gzip;q=0.5": true,
		"gzip;q=0":             false,
		"gzip; q=0.000":        false,
		"*":                    true,
		"*;q=0, gzip":          true,
		"gzip;q=0, *":          false,
		"identity":             false,
		"deflate, *;q=0":       false,
		"x-gzip":               true,
		"gzip;q=nonsense":      false,
	}
	for header, want := range tests {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}
