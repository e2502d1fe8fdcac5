package nginx_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seckill/seckill/deploy"
	"github.com/seckill/seckill/internal/nginx"
)

func TestRender(t *testing.T) {
	t.Parallel()
	got, err := nginx.Render(deploy.NginxConf, []string{"127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"}, "127.0.0.1:9", "/tmp/x")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"server 127.0.0.1:1001 max_fails=1 fail_timeout=2s;\n  server 127.0.0.1:1002 max_fails=1 fail_timeout=2s;\n  server 127.0.0.1:1003 max_fails=1 fail_timeout=2s;\n",
		"listen 127.0.0.1:9;", "proxy_cache_path /tmp/x/seckill ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered config lacks %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"api1", "api2", "listen 8080", "/var/cache"} {
		if strings.Contains(got, gone) {
			t.Errorf("rendered config still has %q", gone)
		}
	}
	// A configuration whose shape changed is an error, not a silent miss.
	if _, err := nginx.Render(strings.Replace(deploy.NginxConf, "listen 8080;", "listen 80;", 1), []string{"a:1"}, "b:2", "/c"); err == nil {
		t.Error("Render accepted a configuration without `listen 8080;`")
	}
}

// need returns the nginx binary, or skips where there is none (never in CI,
// which installs it).
func need(t *testing.T) string {
	t.Helper()
	exe, err := nginx.Find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return exe
}

// The deployed configuration in front of a stand-in API: the sale status is
// answered from the cache, and X-Forwarded-For gets the client's address.
func TestProxyCachesSaleStatus(t *testing.T) {
	t.Parallel()
	need(t)
	var hits atomic.Int64
	var xff atomic.Value
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/sales/s1" {
			hits.Add(1)
			w.Header().Set("Cache-Control", "public, max-age=1, s-maxage=1, stale-while-revalidate=1")
			w.Header().Set("ETag", `W/"v1"`)
			fmt.Fprintf(w, `{"id":"s1","n":%d}`, hits.Load())
			return
		}
		xff.Store(r.Header.Get("X-Forwarded-For"))
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, `{}`)
	}))
	defer api.Close()
	p, err := nginx.Start(context.Background(), nginx.Config{
		Upstreams: []string{strings.TrimPrefix(api.URL, "http://")}, Dir: t.TempDir(), AccessLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	// 40 viewers polling for 2.5 s: a few hundred requests, a handful reach the API.
	var wg sync.WaitGroup
	var sent atomic.Int64
	stop := time.Now().Add(2500 * time.Millisecond)
	for range 40 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				resp, err := http.Get(p.URL + "/v1/sales/s1?bust=" + fmt.Sprint(time.Now().UnixNano()))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status %d", resp.StatusCode)
				}
				sent.Add(1)
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	// One fetch per second of max-age, at most one more per background
	// refresh or expired copy: 2.5 s cannot need more than ~6.
	if got := hits.Load(); got < 1 || got > 6 || sent.Load() < 200 {
		t.Errorf("%d polls through the proxy, %d reached the API; want ≥ 200 polls and 1-6 at the API", sent.Load(), got)
	}
	t.Logf("%d polls through the proxy, %d reached the API", sent.Load(), hits.Load())

	req, _ := http.NewRequest("GET", p.URL+"/v1/other", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := xff.Load(), "203.0.113.9, 127.0.0.1"; got != want {
		t.Errorf("the API got X-Forwarded-For %q, want %q (the client's header, then the address nginx saw)", got, want)
	}
	lines, err := p.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	var cached int
	for _, l := range lines {
		if strings.HasPrefix(l, "HIT ") || strings.HasPrefix(l, "UPDATING ") || strings.HasPrefix(l, "STALE ") {
			cached++
		}
	}
	if cached < 190 {
		t.Errorf("access log: %d of %d requests answered from the cache", cached, len(lines))
	}
}
