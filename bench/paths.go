package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/internal/loadgen"
)

// load runs one closed-loop phase (or open loop when perSec > 0) of n
// requests built by next.
func (b *bench) load(ctx context.Context, name, base string, n int, next func(i int) loadgen.Request, perSec float64) (loadgen.Result, error) {
	res, err := loadgen.Run(ctx, loadgen.Config{
		BaseURL: base, Concurrency: b.cfg.conc, Rate: perSec, Requests: n, Duration: 3 * time.Minute, Next: next,
	}, func(status int) bool { return status == http.StatusAccepted })
	if err != nil {
		return res, err
	}
	b.logf("%s", res.Table(name))
	b.logRSS(name)
	b.details = append(b.details, "```\n"+res.Table(name)+"```")
	return res, nil
}

// purchases builds request i as a purchase at path by the user of tokens[i],
// with the body the sale page sends.
func purchases(path string, tokens []string) func(i int) loadgen.Request {
	return func(i int) loadgen.Request {
		return loadgen.Request{Method: "POST", Path: path, Body: purchaseBody, Header: http.Header{"Authorization": {tokens[i]}}}
	}
}

// freshSale creates a sale with stock for n and returns it with n purchases
// of it, each by a different user of the pool.
func (b *bench) freshSale(ctx context.Context, n int) (string, func(i int) loadgen.Request, error) {
	sale, err := b.createSale(ctx, n)
	if err != nil {
		return "", nil, err
	}
	tokens, err := b.pool.distinct(n)
	if err != nil {
		return "", nil, err
	}
	return sale, purchases("/v1/sales/"+sale+"/purchase", tokens), nil
}

// purchaseBody is what the sale page sends with every purchase.
var purchaseBody = []byte(`{"quantity":1}`)

func (b *bench) createSale(ctx context.Context, stock int) (string, error) {
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"name":"bench","stock":%d,"price_cents":100,"per_user_limit":1,"starts_at":%q,"ends_at":%q}`,
		stock, now.Add(-time.Second).Format(time.RFC3339), now.Add(2*time.Hour).Format(time.RFC3339))
	var sale struct {
		ID string `json:"id"`
	}
	if err := b.call(ctx, "POST", "/v1/sales", b.admin, body, http.StatusCreated, &sale); err != nil {
		return "", err
	}
	return sale.ID, nil
}

func (b *bench) call(ctx context.Context, method, path, token, body string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, b.api+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// soldOutSale creates a sale of one unit and buys it.
func (b *bench) soldOutSale(ctx context.Context) (string, error) {
	sale, err := b.createSale(ctx, 1)
	if err != nil {
		return "", err
	}
	tok, err := shttp.NewToken(b.secret, "first-buyer", false, time.Hour)
	if err != nil {
		return "", err
	}
	if err := b.call(ctx, "POST", "/v1/sales/"+sale+"/purchase", tok, "", http.StatusAccepted, nil); err != nil {
		return "", err
	}
	return sale, nil
}

// soldOutPath sends attempts at a sold-out sale, each by the next user of
// the token pool.
func (b *bench) soldOutPath(ctx context.Context, sale string, round int) (loadgen.Result, error) {
	n := 2 * b.cfg.n
	res, err := b.load(ctx, fmt.Sprintf("sold-out rejection path (round %d)", round+1), b.api, n, purchases("/v1/sales/"+sale+"/purchase", b.pool.take(n)), 0)
	if err == nil && res.ByCode["sold_out"] != res.Sent {
		err = fmt.Errorf("sold-out phase: %d of %d answered sold_out", res.ByCode["sold_out"], res.Sent)
	}
	return res, err
}

// bought is what a purchase phase leaves for the pay phase: the orders
// and the tokens of the users who hold them.
type bought struct {
	kept   []loadgen.Kept
	tokens []string // request i was sent with tokens[i]
}

// purchasePath buys with n distinct users from a sale with stock for all.
func (b *bench) purchasePath(ctx context.Context, round int) (loadgen.Result, bought, error) {
	sale, err := b.createSale(ctx, b.cfg.n)
	if err != nil {
		return loadgen.Result{}, bought{}, err
	}
	tokens, err := b.pool.distinct(b.cfg.n)
	if err != nil {
		return loadgen.Result{}, bought{}, err
	}
	res, err := b.load(ctx, fmt.Sprintf("purchase path, stock available (round %d)", round+1), b.api, b.cfg.n, purchases("/v1/sales/"+sale+"/purchase", tokens), 0)
	if err == nil && res.ByStatus[http.StatusAccepted] != res.Sent {
		err = fmt.Errorf("purchase phase: %d of %d accepted", res.ByStatus[http.StatusAccepted], res.Sent)
	}
	return res, bought{res.Kept, tokens}, err
}

// pausedPurchasePath is the purchase path with the rest of the system
// paused: `seckill dev` (broker, relay, projector, sweeper) is stopped with
// SIGSTOP for the phase and continued after it, so the API node, Redis and
// the load generator have the two cores to themselves, as on a deployment
// where the log and the read models run on other machines. Redis and
// Postgres are processes of their own and keep running. The outbox holds
// the phase's events meanwhile; the relay forwards them once continued, and
// the settle that follows (with its audit) checks that nothing was lost. It
// measures how much of the purchase path's gap to its ceiling is the
// pipeline sharing the machine (docs/performance.md, issue 13).
func (b *bench) pausedPurchasePath(ctx context.Context) (loadgen.Result, error) {
	sale, next, err := b.freshSale(ctx, b.cfg.n)
	if err != nil {
		return loadgen.Result{}, err
	}
	if err := syscall.Kill(b.devPID, syscall.SIGSTOP); err != nil {
		return loadgen.Result{}, fmt.Errorf("pause seckill dev: %w", err)
	}
	res, err := b.load(ctx, "purchase path, stock available, pipeline paused", b.api, b.cfg.n, next, 0)
	if cerr := syscall.Kill(b.devPID, syscall.SIGCONT); cerr != nil && err == nil {
		err = fmt.Errorf("continue seckill dev: %w", cerr)
	}
	if err == nil && res.ByStatus[http.StatusAccepted] != res.Sent {
		err = fmt.Errorf("paused purchase phase in sale %s: %d of %d accepted", sale, res.ByStatus[http.StatusAccepted], res.Sent)
	}
	return res, err
}

// payPath pays every order of a purchase phase, each by its owner.
func (b *bench) payPath(ctx context.Context, orders bought) (loadgen.Result, error) {
	kept, tokens := orders.kept, orders.tokens
	type pay struct{ order, token string }
	pays := make([]pay, 0, len(kept))
	for _, k := range kept {
		var r struct {
			OrderID string `json:"order_id"`
		}
		if json.Unmarshal(k.Body, &r) == nil {
			pays = append(pays, pay{r.OrderID, tokens[k.Index]})
		}
	}
	body := []byte(`{"payment_ref":"bench"}`)
	res, err := b.load(ctx, "pay path", b.api, len(pays), func(i int) loadgen.Request {
		return loadgen.Request{Method: "POST", Path: "/v1/orders/" + pays[i].order + "/pay", Body: body,
			Header: http.Header{"Authorization": {pays[i].token}}}
	}, 0)
	if err == nil && res.ByStatus[http.StatusOK] != res.Sent {
		err = fmt.Errorf("pay phase: %d of %d paid (%v)", res.ByStatus[http.StatusOK], res.Sent, res.ByCode)
	}
	return res, err
}
