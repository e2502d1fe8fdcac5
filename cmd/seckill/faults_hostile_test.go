//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/internal/testenv"
)

// TestFaultHostileClients attacks one API node (`seckill serve --role api`,
// its own process) with clients that want to tie it up, all at once: 2,000
// idle connections, slowloris (headers trickled a byte at a time), bodies
// trickled a byte at a time, huge bodies, huge headers and deeply nested
// JSON. Meanwhile an ordinary shopper reads the sale and buys every 50 ms,
// each on a new connection, and must be answered within a second. Then it
// checks that the server's timeouts (http.NewServer) are what ended each
// attack: idle and slowloris connections are closed at ReadHeaderTimeout,
// trickled bodies at ReadTimeout; MaxHeaderBytes turns huge headers away
// (431) and the 16 KiB body limit huge bodies (413) without reading them.
func TestFaultHostileClients(t *testing.T) {
	// Mostly waiting (a lease, a timeout, an outage): runs beside the others.
	t.Parallel()
	const bound = time.Second // an ordinary request must be answered within it
	idleConns := 2000
	d := newDeployment(t, testenv.RedisServer(t).URL())
	api := d.serve("api", "api")
	d.serve("back", "relay,projector,sweeper")
	d.sys.base = api.base
	sale := d.sys.createSale(100_000, `,"per_user_limit":1`)
	addr := strings.TrimPrefix(api.base, "http://")
	limits := shttp.NewServer("", nil) // the timeouts under test
	purchase := "/v1/sales/" + sale + "/purchase"
	tok := d.sys.token("mallory")
	begin := time.Now()

	// closedAfter reads c until the server closes it and returns how long
	// that took from start, and the first line the server sent, if any.
	closedAfter := func(c net.Conn, start time.Time) (time.Duration, string) {
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		line, _ := bufio.NewReader(c).ReadString('\n')
		// Drain until EOF (a 4xx may come before the close).
		_, _ = io.Copy(io.Discard, c)
		return time.Since(start), strings.TrimSpace(line)
	}
	type result struct {
		took  time.Duration
		first string
	}
	var (
		mu      sync.Mutex
		results = map[string][]result{}
		attacks sync.WaitGroup
	)
	record := func(kind string, took time.Duration, first string) {
		mu.Lock()
		results[kind] = append(results[kind], result{took, first})
		mu.Unlock()
	}

	// 2,000 idle connections: they send nothing at all.
	// Each attack's clock starts before its dial: the server's starts after
	// its accept, so an attack never looks cut short because its goroutine
	// was scheduled late on a loaded machine.
	for range idleConns {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection: %v", err)
		}
		attacks.Go(func() {
			defer c.Close()
			took, first := closedAfter(c, start)
			record("idle", took, first)
		})
	}
	// Slowloris: a request line, then a header one byte every 100 ms.
	for range 50 {
		attacks.Go(func() {
			start := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Errorf("slowloris: %v", err)
				return
			}
			defer c.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				took, first := closedAfter(c, start)
				record("slow headers", took, first)
			}()
			_, _ = io.WriteString(c, "POST "+purchase+" HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			for {
				select {
				case <-done:
					return
				case <-time.After(100 * time.Millisecond):
					_, _ = c.Write([]byte("a"))
				}
			}
		})
	}
	// Slow bodies: whole headers, then the body one byte every 200 ms.
	for range 50 {
		attacks.Go(func() {
			start := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Errorf("slow body: %v", err)
				return
			}
			defer c.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				took, first := closedAfter(c, start)
				record("slow body", took, first)
			}()
			_, _ = io.WriteString(c, "POST "+purchase+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+
				"\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n")
			for {
				select {
				case <-done:
					return
				case <-time.After(200 * time.Millisecond):
					_, _ = c.Write([]byte(" "))
				}
			}
		})
	}
	// Huge bodies (64 MiB each, sent as fast as the server takes them) and
	// huge headers (1 MiB): answered 413 and 431 without being read.
	var hugeWritten atomic.Int64
	for i := range 20 {
		attacks.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Errorf("huge request: %v", err)
				return
			}
			defer c.Close()
			start := time.Now()
			kind := "huge body"
			go func() {
				if i%2 == 0 {
					_, _ = io.WriteString(c, "POST "+purchase+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+
						"\r\nContent-Type: application/json\r\nContent-Length: 67108864\r\n\r\n{\"quantity\":")
					chunk := []byte(strings.Repeat("1", 64<<10))
					for range 1024 {
						n, err := c.Write(chunk)
						hugeWritten.Add(int64(n))
						if err != nil {
							return
						}
					}
					return
				}
				_, _ = io.WriteString(c, "GET /v1/sales/"+sale+" HTTP/1.1\r\nHost: x\r\nX-Huge: "+strings.Repeat("h", 1<<20)+"\r\n\r\n")
			}()
			if i%2 != 0 {
				kind = "huge header"
			}
			took, first := closedAfter(c, start)
			record(kind, took, first)
		})
	}
	// Deeply nested JSON, within the body limit and beyond encoding/json's
	// depth limit (10,000), and over the body limit.
	client := newClient(4)
	for name, body := range map[string]string{
		"nested arrays, depth 5000":   strings.Repeat("[", 5000) + strings.Repeat("]", 5000),
		"nested arrays, depth 12000":  strings.Repeat("[", 12000),
		"nested objects, depth 2500":  `{"quantity":` + strings.Repeat(`{"a":`, 2500) + "1" + strings.Repeat("}", 2501),
		"nested arrays, depth 100000": strings.Repeat("[", 100_000),
	} {
		attacks.Go(func() {
			start := time.Now()
			a := call(client, "POST", api.base+purchase, tok, body)
			record("deep JSON", time.Since(start), fmt.Sprintf("%s: %d %s", name, a.status, a.code))
			if a.status != http.StatusBadRequest && a.status != http.StatusRequestEntityTooLarge {
				t.Errorf("%s: %d %q %v, want 400 or 413", name, a.status, a.code, a.err)
			}
		})
	}

	// The ordinary shopper, each request on a new connection, while the
	// attacks last.
	attacksDone := make(chan struct{})
	go func() { attacks.Wait(); close(attacksDone) }()
	var (
		ordinary int
		slowest  time.Duration
	)
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
loop:
	for i := 0; ; i++ {
		select {
		case <-attacksDone:
			break loop
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(begin) > time.Minute {
			t.Fatal("the attacks still run after a minute")
		}
		for _, req := range []struct{ method, path, token, body string }{
			{"GET", "/v1/sales/" + sale, "", ""},
			{"POST", purchase, d.sys.token(fmt.Sprintf("shopper%04d", i)), `{"quantity":1}`},
		} {
			start := time.Now()
			a := call(plain, req.method, api.base+req.path, req.token, req.body)
			took := time.Since(start)
			slowest = max(slowest, took)
			ordinary++
			if a.status != http.StatusOK && a.status != http.StatusAccepted {
				t.Errorf("ordinary %s %s during the attacks: %d %q %v", req.method, req.path, a.status, a.code, a.err)
			} else if took > bound {
				t.Errorf("ordinary %s %s took %v during the attacks, over %v", req.method, req.path, took, bound)
			}
		}
	}
	select {
	case <-api.done:
		t.Fatalf("the API node died: %v\n%s", api.err, tail(api.log, 20))
	default:
	}
	t.Logf("faults: hostile clients: %d ordinary requests answered during %v of attacks, the slowest in %v (bound %v)",
		ordinary, time.Since(begin).Round(100*time.Millisecond), slowest.Round(time.Millisecond), bound)

	// What ended each attack, and when.
	within := func(kind string, want time.Duration, status string) {
		t.Helper()
		rs := results[kind]
		if len(rs) == 0 {
			t.Errorf("%s: no results", kind)
			return
		}
		lo, hi := rs[0].took, rs[0].took
		for _, r := range rs {
			lo, hi = min(lo, r.took), max(hi, r.took)
			if status != "" && !strings.Contains(r.first, status) {
				t.Errorf("%s: the server answered %q, want %s", kind, r.first, status)
			}
			if want > 0 && (r.took < want-500*time.Millisecond || r.took > want+3*time.Second) {
				t.Errorf("%s: closed after %v, want about %v", kind, r.took, want)
			}
		}
		t.Logf("%-12s ×%4d: ended after %v..%v (the server's limit: %v), first line %q",
			kind, len(rs), lo.Round(10*time.Millisecond), hi.Round(10*time.Millisecond), want, rs[0].first)
	}
	within("idle", limits.ReadHeaderTimeout, "")
	within("slow headers", limits.ReadHeaderTimeout, "")
	// The trickled body is cut at ReadTimeout; the handler then answers
	// (the router's own 10 s timeout has passed by then: 503 or 504).
	within("slow body", limits.ReadTimeout, "")
	within("huge body", 0, "413")
	within("huge header", 0, "431")
	within("deep JSON", 0, "")
	for _, r := range results["deep JSON"] {
		t.Logf("deep JSON: %s in %v", r.first, r.took.Round(time.Millisecond))
	}
	t.Logf("huge bodies: %d MiB sent of 10 × 64 MiB before the server closed (MaxBytesReader at 16 KiB)", hugeWritten.Load()>>20)
	if hugeWritten.Load() > 10*32<<20 {
		t.Errorf("the server read %d MiB of huge bodies: it should stop at the limit", hugeWritten.Load()>>20)
	}
	if limits.MaxHeaderBytes <= 0 || limits.ReadHeaderTimeout <= 0 || limits.ReadTimeout <= 0 || limits.WriteTimeout <= 0 || limits.IdleTimeout <= 0 {
		t.Errorf("http.NewServer leaves a limit off: %+v", limits)
	}
}
