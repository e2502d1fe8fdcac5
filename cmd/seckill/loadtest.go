package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/internal/loadgen"
)

func runLoadtest(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "loadtest", "loadtest [--url http://127.0.0.1:8080] [--stock 100] [--users 10000] [--requests 100000] [--concurrency 64 | --rate 5000]")
	var ep endpoints
	ep.bind(c, fs)
	target := fs.String("url", "", "the API to load (loopback only); default: the running `seckill dev`")
	saleID := fs.String("sale", "", "an existing sale to buy from; default: create one with --stock")
	stock := fs.Int64("stock", 100, "stock of the sale the load test creates")
	users := fs.Int("users", 10_000, "simulated users (each gets its own token)")
	requests := fs.Int("requests", 100_000, "purchase attempts to send at most")
	duration := fs.Duration("duration", 2*time.Minute, "longest the run may take")
	conc := fs.Int("concurrency", 64, "concurrent clients (closed loop), or most in flight with --rate")
	rate := fs.Float64("rate", 0, "open loop: attempts per second (0 = closed loop)")
	check := fs.Bool("check", true, "after the run, check accepted == min(stock, users) and that the read model has every accepted order")
	if err := parse(fs, args); err != nil {
		return err
	}
	ep.fromDev()
	if *target == "" {
		if st, err := readDevState(ep.Data); err == nil && st.HTTPAddr != "" {
			*target = "http://" + st.HTTPAddr
		} else {
			*target = "http://127.0.0.1:8080"
		}
	}
	if err := loadgen.CheckLoopback(*target); err != nil {
		return usageError{err.Error()}
	}
	if *users < 1 || *requests < 1 || *stock < 1 {
		return usageError{"--users, --requests and --stock must be positive"}
	}
	if err := ep.need(false, false, false, true); err != nil {
		return err
	}
	secret := []byte(ep.JWTSecret)
	admin, err := shttp.NewToken(secret, "loadtest-admin", true, time.Hour)
	if err != nil {
		return err
	}
	api := &apiClient{base: strings.TrimRight(*target, "/"), token: admin, hc: &http.Client{Timeout: 10 * time.Second}}
	if *saleID == "" {
		now := time.Now().UTC()
		var sale struct {
			ID string `json:"id"`
		}
		body := fmt.Sprintf(`{"name":"load test","stock":%d,"price_cents":100,"per_user_limit":1,"starts_at":%q,"ends_at":%q}`,
			*stock, now.Add(-time.Second).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
		if err := api.call(ctx, "POST", "/v1/sales", body, http.StatusCreated, &sale); err != nil {
			return fmt.Errorf("create sale: %w", err)
		}
		*saleID = sale.ID
	}
	fmt.Fprintf(c.stdout, "load test: sale %s, %d users, up to %d attempts in %s, ", *saleID, *users, *requests, *duration)
	if *rate > 0 {
		fmt.Fprintf(c.stdout, "open loop at %.0f/s (≤%d in flight)\n", *rate, *conc)
	} else {
		fmt.Fprintf(c.stdout, "closed loop with %d clients\n", *conc)
	}
	tokens, err := mintTokens(secret, "lt", *users)
	if err != nil {
		return err
	}
	path := "/v1/sales/" + *saleID + "/purchase"
	res, err := loadgen.Run(ctx, loadgen.Config{
		BaseURL: *target, Concurrency: *conc, Rate: *rate, Requests: *requests, Duration: *duration,
		Progress: c.stderr,
		Next: func(i int) loadgen.Request {
			return loadgen.Request{Method: "POST", Path: path, Header: http.Header{"Authorization": {tokens[i%len(tokens)]}}}
		},
	}, func(status int) bool { return status == http.StatusAccepted })
	if err != nil {
		return err
	}
	fmt.Fprint(c.stdout, res.Table("result"))
	if !*check {
		return nil
	}
	return checkOutcome(ctx, c, api, *saleID, res, min(int(*stock), *users, res.Sent))
}

// mintTokens makes one "Bearer …" header value per simulated user.
func mintTokens(secret []byte, prefix string, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		t, err := shttp.NewToken(secret, prefix+strconv.Itoa(i), false, 2*time.Hour)
		if err != nil {
			return nil, err
		}
		out[i] = "Bearer " + t
	}
	return out, nil
}

// checkOutcome verifies the sale sold exactly what it should and that every
// accepted order reached the read model.
func checkOutcome(ctx context.Context, c cli, api *apiClient, saleID string, res loadgen.Result, want int) error {
	accepted := res.ByStatus[http.StatusAccepted]
	var problems []string
	if accepted != want {
		problems = append(problems, fmt.Sprintf("accepted %d, want min(stock, users, attempts) = %d", accepted, want))
	}
	orders := make([]string, 0, len(res.Kept))
	for _, k := range res.Kept {
		var r struct {
			OrderID string `json:"order_id"`
		}
		if json.Unmarshal(k.Body, &r) == nil && r.OrderID != "" {
			orders = append(orders, r.OrderID)
		}
	}
	begin := time.Now()
	missing := api.waitReadModel(ctx, orders, 60*time.Second)
	if missing > 0 {
		problems = append(problems, fmt.Sprintf("%d accepted orders not in the read model after 60s", missing))
	} else {
		fmt.Fprintf(c.stdout, "read model: all %d accepted orders present (%.1fs after the run)\n", len(orders), time.Since(begin).Seconds())
	}
	var sale struct {
		Stock     int64 `json:"stock"`
		Remaining int64 `json:"remaining"`
	}
	if err := api.call(ctx, "GET", "/v1/sales/"+saleID, "", http.StatusOK, &sale); err != nil {
		problems = append(problems, err.Error())
	} else if got := sale.Stock - sale.Remaining; got != int64(accepted) {
		problems = append(problems, fmt.Sprintf("gate: %d units taken, but %d accepted", got, accepted))
	}
	if len(problems) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("outcome check failed:\n  %s", strings.Join(problems, "\n  "))}
	}
	fmt.Fprintf(c.stdout, "outcome check: OK (accepted %d = expected %d; gate and read model agree)\n", accepted, want)
	return nil
}

type apiClient struct {
	base, token string
	hc          *http.Client
}

func (a *apiClient) call(ctx context.Context, method, path, body string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var e map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: status %d %v", method, path, resp.StatusCode, e)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// waitReadModel polls each order (as admin) until the read model answers for
// it, and returns how many never did within timeout.
func (a *apiClient) waitReadModel(ctx context.Context, orders []string, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	pending := orders
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		var (
			mu   sync.Mutex
			next []string
			wg   sync.WaitGroup
			sem  = make(chan struct{}, 16)
		)
		for _, id := range pending {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				var o struct {
					Source string `json:"source"`
				}
				if err := a.call(ctx, "GET", "/v1/orders/"+id, "", http.StatusOK, &o); err != nil || o.Source != "read_model" {
					mu.Lock()
					next = append(next, id)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if pending = next; len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return len(pending)
}
