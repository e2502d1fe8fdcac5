// Package loadgen drives bounded HTTP load at a seckill server on loopback and
// measures it: closed loop (a fixed number of concurrent clients) or open loop
// (a fixed arrival rate, with latency measured from each request's intended
// start so a slow server cannot hide its queueing: no coordinated omission).
// It refuses targets that are not on this machine.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one request to send; Body may be nil.
type Request struct {
	Method string
	Path   string
	Body   []byte
	Header http.Header
}

// Config bounds and shapes one run.
type Config struct {
	// BaseURL is the server, e.g. http://127.0.0.1:8080. Only loopback hosts are allowed.
	BaseURL string
	// Concurrency is the number of clients in closed-loop mode, and the most
	// requests in flight in open-loop mode. Default 64.
	Concurrency int
	// Rate, when > 0, selects open-loop mode: requests start at this many per second.
	Rate float64
	// Requests is the most requests sent; Duration the longest the run lasts.
	// At least one must be set: a load run always stops by itself.
	Requests int
	Duration time.Duration
	// Next builds request i (0-based); it must be safe for concurrent use.
	Next func(i int) Request
	// Progress, if set, receives a status line every ProgressEvery (default 1s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Client is the HTTP client; default a client with a pool sized to Concurrency.
	Client *http.Client
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if err := CheckLoopback(c.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if c.Requests <= 0 && c.Duration <= 0 {
		errs = append(errs, errors.New("loadgen: set Requests or Duration (a run must stop by itself)"))
	}
	if c.Concurrency < 0 || c.Rate < 0 {
		errs = append(errs, errors.New("loadgen: Concurrency and Rate must not be negative"))
	}
	if c.Next == nil {
		errs = append(errs, errors.New("loadgen: Next is required"))
	}
	return errors.Join(errs...)
}

// CheckLoopback accepts only http URLs whose host is a loopback address or localhost.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("loadgen: %q is not an http://host:port URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("loadgen: %s is not a loopback address; load is only sent to this machine", host)
}

// Result is what a run measured.
type Result struct {
	Sent     int
	Elapsed  time.Duration
	ByStatus map[int]int
	// ByCode counts error codes of JSON error bodies ({"error":{"code":...}}).
	ByCode map[string]int
	// Failed counts requests that got no HTTP answer (connection errors, timeouts).
	Failed    int
	FirstErr  string
	latencies []time.Duration
	// Kept holds the 2xx answers Run's keep asked for.
	Kept []Kept
}

// Throughput is answered requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent-r.Failed) / r.Elapsed.Seconds()
}

// Percentile returns the p-th latency percentile (0 < p ≤ 100).
func (r Result) Percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(r.latencies)))) - 1
	return r.latencies[max(0, min(i, len(r.latencies)-1))]
}

// Run sends the load and returns what it measured. keep, if set, decides per
// status whether a 2xx body is kept in Result.Kept (for checking outcomes).
func Run(ctx context.Context, cfg Config, keep func(status int) bool) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 64
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = time.Second
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns: cfg.Concurrency * 2, MaxIdleConnsPerHost: cfg.Concurrency * 2,
				IdleConnTimeout: 30 * time.Second, DisableCompression: true,
			},
		}
		defer client.CloseIdleConnections()
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	l := &load{cfg: cfg, client: client, base: strings.TrimRight(cfg.BaseURL, "/"), keep: keep, limit: cfg.Requests, start: time.Now()}
	if l.limit <= 0 {
		l.limit = math.MaxInt
	}
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for w := range workers {
		workers[w] = &worker{byStatus: map[int]int{}, byCode: map[string]int{}}
		wg.Go(func() { l.work(ctx, workers[w]) })
	}
	stopProgress := l.reportProgress()
	wg.Wait()
	elapsed := time.Since(l.start)
	stopProgress()
	rs := make([]Result, len(workers))
	for i, wk := range workers {
		rs[i] = wk.result()
	}
	res := Merge(rs...)
	res.Elapsed = elapsed
	return res, nil
}

// load is one Run under way: what its workers share.
type load struct {
	cfg    Config
	client *http.Client
	base   string
	keep   func(status int) bool
	limit  int
	start  time.Time
	next   atomic.Int64 // the next request to send
	done   atomic.Int64 // requests answered or failed
}

// due is when request i is due in open-loop mode: start + i/rate (zero in
// closed loop). A worker that picks it up late still measures from then.
func (l *load) due(i int) time.Time {
	if l.cfg.Rate <= 0 {
		return time.Time{}
	}
	return l.start.Add(time.Duration(float64(i) / l.cfg.Rate * float64(time.Second)))
}

// work sends requests until the limit or ctx ends the load.
func (l *load) work(ctx context.Context, wk *worker) {
	for ctx.Err() == nil {
		i := int(l.next.Add(1) - 1)
		if i >= l.limit {
			return
		}
		t0 := time.Now()
		if d := l.due(i); !d.IsZero() {
			if wait := time.Until(d); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
			t0 = d
		}
		wk.send(ctx, l.client, l.base, i, l.cfg.Next(i), t0, l.keep)
		l.done.Add(1)
	}
}

// reportProgress writes the requests done and the rate to cfg.Progress every
// ProgressEvery, until the returned stop is called.
func (l *load) reportProgress() (stop func()) {
	if l.cfg.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(l.cfg.ProgressEvery)
		defer t.Stop()
		last, lastAt := int64(0), l.start
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				n := l.done.Load()
				fmt.Fprintf(l.cfg.Progress, "  %6.1fs  %9d requests  %9.0f req/s\n", now.Sub(l.start).Seconds(), n, float64(n-last)/now.Sub(lastAt).Seconds())
				last, lastAt = n, now
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// result is what wk measured, as a Result of its own (Merge adds them up).
func (wk *worker) result() Result {
	return Result{Sent: wk.sent, Failed: wk.failed, FirstErr: wk.firstErr, ByStatus: wk.byStatus, ByCode: wk.byCode,
		latencies: wk.latencies, Kept: wk.kept}
}

// Kept is the answer to request Index.
type Kept struct {
	Index int
	Body  []byte
}

type worker struct {
	sent, failed int
	firstErr     string
	byStatus     map[int]int
	byCode       map[string]int
	latencies    []time.Duration
	kept         []Kept
}

func (w *worker) send(ctx context.Context, c *http.Client, base string, i int, r Request, t0 time.Time, keep func(int) bool) {
	w.sent++
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, base+r.Path, body)
	if err != nil {
		w.fail(err)
		return
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			w.sent-- // cut off by the end of the run, not an answer
			return
		}
		w.fail(err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	w.latencies = append(w.latencies, time.Since(t0))
	w.byStatus[resp.StatusCode]++
	if resp.StatusCode >= 400 {
		if code := errorCode(b); code != "" {
			w.byCode[code]++
		}
	} else if keep != nil && keep(resp.StatusCode) {
		w.kept = append(w.kept, Kept{Index: i, Body: b})
	}
}

// codePrefix starts every seckill error body: {"error":{"code":"sold_out",...}}.
var codePrefix = []byte(`{"error":{"code":"`)

// errorCode is the code of a JSON error body, "" if there is none. The load
// generator shares the machine with what it measures, so the common shape is
// read without encoding/json; anything else is decoded properly.
func errorCode(b []byte) string {
	if rest, ok := bytes.CutPrefix(b, codePrefix); ok {
		if end := bytes.IndexByte(rest, '"'); end > 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
			return string(rest[:end])
		}
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func (w *worker) fail(err error) {
	w.failed++
	if w.firstErr == "" {
		w.firstErr = err.Error()
	}
}

// Table renders the result as a plain-text table.
func (r Result) Table(title string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", title)
	fmt.Fprintf(&b, "  requests    %d in %.2fs (%.0f req/s)\n", r.Sent, r.Elapsed.Seconds(), r.Throughput())
	codes := make([]int, 0, len(r.ByStatus))
	for c := range r.ByStatus {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "  status %d  %d\n", c, r.ByStatus[c])
	}
	names := make([]string, 0, len(r.ByCode))
	for c := range r.ByCode {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		fmt.Fprintf(&b, "  rejected %-16s %d\n", c, r.ByCode[c])
	}
	if r.Failed > 0 {
		fmt.Fprintf(&b, "  failed      %d (first: %s)\n", r.Failed, r.FirstErr)
	}
	fmt.Fprintf(&b, "  latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		r.Percentile(50), r.Percentile(90), r.Percentile(99), r.Percentile(99.9), r.Percentile(100))
	return b.String()
}
