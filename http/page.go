package http

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
)

// The sale page is plain HTML, CSS and JavaScript with no build step. It is
// embedded in the binary and prepared once at start-up (hashed, compressed),
// so serving it costs a map lookup and a write: no rendering per request. At
// the start of a flash sale every shopper reloads this page at once, and a CDN
// or the browser cache should absorb most of that, hence the cache headers.
//
//go:embed page
var pageFiles embed.FS

// Cache lifetimes. Versioned asset URLs carry the hash of their content, so
// they never change and may be cached for a year. The HTML shells and the
// unversioned asset URLs must pick up a new release, so they live briefly and
// are revalidated with their ETag (a 304 is a few bytes).
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheShell     = "public, max-age=60"
	cacheAsset     = "public, max-age=300"
)

// pageCSP keeps the page to its own origin: no inline script, no third-party
// code, no framing. The API it calls is on the same origin.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// asset is one embedded file as it is served.
type asset struct {
	body        []byte
	gz          []byte // gzip of body, nil when that is not smaller
	contentType string
	etag        string // strong, quoted; the gzip variant gets its own
	cache       string
	shell       bool // an HTML page: gets the security headers
}

// site is the prepared sale page: the assets by URL path, and the HTML
// shells by language and URL path.
type site struct {
	files  map[string]*asset
	shells map[string]map[string]*asset // language → "/" or "/sale" → shell
}

// loadSite is built once per process: the embedded files never change.
var loadSite = sync.OnceValues(func() (*site, error) { return buildSite(pageFiles) })

// buildSite prepares the files under page/: every asset under page/assets/
// is served at /assets/NAME (short cache) and at /assets/STEM.HASH.EXT
// (immutable), and the HTML shells refer to the versioned URLs. The shells
// are rendered once per language from page/text.json, which also becomes
// the asset text.js that the scripts read their sentences from.
func buildSite(fsys fs.FS) (*site, error) {
	s := &site{files: map[string]*asset{}, shells: map[string]map[string]*asset{}}
	cat, err := loadCatalog(fsys)
	if err != nil {
		return nil, fmt.Errorf("sale page: %w", err)
	}
	files := map[string][]byte{"text.js": cat.script()}
	assets, err := fs.ReadDir(fsys, "page/assets")
	if err != nil {
		return nil, fmt.Errorf("sale page: %w", err)
	}
	for _, e := range assets {
		if e.IsDir() {
			continue
		}
		if files[e.Name()], err = fs.ReadFile(fsys, "page/assets/"+e.Name()); err != nil {
			return nil, fmt.Errorf("sale page: %w", err)
		}
	}
	// rewrites maps each plain asset URL, quoted as the HTML writes it, to
	// its versioned URL.
	var rewrites []string
	for name, b := range files {
		sum := sha256.Sum256(b)
		hash := hex.EncodeToString(sum[:])[:12]
		ext := path.Ext(name)
		versioned := "/assets/" + strings.TrimSuffix(name, ext) + "." + hash + ext
		s.files["/assets/"+name] = newAsset(b, ext, cacheAsset, false)
		s.files[versioned] = newAsset(b, ext, cacheImmutable, false)
		rewrites = append(rewrites, `"/assets/`+name+`"`, `"`+versioned+`"`)
	}
	rw := strings.NewReplacer(rewrites...)
	for _, lang := range languages {
		s.shells[lang] = map[string]*asset{}
		for urlPath, file := range map[string]string{"/": "page/index.html", "/sale": "page/sale.html"} {
			b, err := cat.render(fsys, file, lang)
			if err != nil {
				return nil, fmt.Errorf("sale page: %w", err)
			}
			s.shells[lang][urlPath] = newAsset([]byte(rw.Replace(string(b))), ".html", cacheShell, true)
		}
	}
	return s, nil
}

func newAsset(b []byte, ext, cache string, shell bool) *asset {
	a := &asset{body: b, cache: cache, shell: shell, contentType: contentType(ext)}
	sum := sha256.Sum256(b)
	a.etag = `"` + hex.EncodeToString(sum[:16]) + `"`
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	if buf.Len() < len(b) {
		a.gz = buf.Bytes()
	}
	return a
}

// contentType names the types of the files we ship ourselves rather than
// trusting the machine's mime tables, which differ between hosts.
func contentType(ext string) string {
	switch ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".webmanifest":
		return "application/manifest+json"
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// routePage mounts the sale page: / (the index), /sale/{id} (the same shell
// for every id: the script reads the id from the address), and /assets/*.
func (s *server) routePage(r chi.Router) error {
	st, err := loadSite()
	if err != nil {
		return err
	}
	shell := func(key string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			lang := pageLanguage(r)
			h := w.Header()
			// Caches keep one copy per language: the choice is made from
			// these two headers (pageLanguage).
			h.Add("Vary", "Accept-Language, Cookie")
			h.Set("Content-Language", lang)
			st.shells[lang][key].serve(w, r)
		}
	}
	assets := func(w http.ResponseWriter, r *http.Request) {
		a, ok := st.files[r.URL.Path]
		if !ok {
			writeError(w, r, s.log, &apiError{status: http.StatusNotFound, code: "not_found", message: "no such asset"})
			return
		}
		a.serve(w, r)
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r.Method(m, "/", shell("/"))
		r.Method(m, "/sale/{id}", shell("/sale"))
		r.Method(m, "/assets/*", http.HandlerFunc(assets))
	}
	return nil
}

// serve writes the asset, gzip-encoded when the client takes it. Conditional
// requests (If-None-Match → 304), HEAD and ranges are http.ServeContent's.
func (a *asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", a.cache)
	h.Set("X-Content-Type-Options", "nosniff")
	if a.shell {
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("Referrer-Policy", "same-origin")
	}
	body, etag := a.body, a.etag
	if a.gz != nil {
		// Caches must keep the two encodings apart.
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip: named
// with a non-zero q, or not named and allowed by "*".
func acceptsGzip(header string) bool {
	gzip, star := -1, -1 // -1: not listed; 0: refused; 1: accepted
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		ok := 1
		if q, found := strings.CutPrefix(strings.ReplaceAll(strings.ToLower(params), " ", ""), "q="); found {
			if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
				ok = 0
			}
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip", "x-gzip":
			gzip = ok
		case "*":
			star = ok
		}
	}
	if gzip >= 0 {
		return gzip == 1
	}
	return star == 1
}
