package commands_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/internal/testenv"
)

// The protections of the gate (guard.go, blacklist.go, token.go, watch.go,
// purchase.lua): each one is shown holding under concurrency, across nodes
// where it is meant to, and answering with its documented error.

// node is one API node: a gate of its own on the shared Redis.
func node(t *testing.T, rdb *redis.Client, clock commands.Clock, cfg commands.GateConfig) *commands.Gate {
	t.Helper()
	cfg.Clock = clock
	if cfg.SaleCacheTTL == 0 {
		cfg.SaleCacheTTL = time.Nanosecond
	}
	if cfg.BatchSize == 0 {
		// One script call per purchase that reaches Redis: the tests below
		// count them (evalshas) to show what memory refused.
		cfg.BatchSize = 1
	}
	g, err := commands.NewGate(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g
}

// watch runs g's watcher for the rest of the test and waits until Redis has
// subscribers subscribers on the channel (this one included).
func watch(t *testing.T, rdb *redis.Client, g *commands.Gate, subscribers int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.RunWatcher(ctx, commands.WatcherConfig{BlacklistRefresh: time.Hour}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
	eventually(t, "watchers subscribed", func() bool {
		n, err := rdb.PubSubNumSub(context.Background(), g.NotifyChannel()).Result()
		return err == nil && n[g.NotifyChannel()] >= subscribers
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func createSale(t *testing.T, g *commands.Gate, stock, limit int64, payWithin time.Duration, p domain.Protections) commands.SaleView {
	t.Helper()
	s, err := g.CreateSale(context.Background(), commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: stock, PriceCents: 1999, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: limit, PayWithinS: int64(payWithin / time.Second),
		},
		Protections: p,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// evalshas is how many EVALSHA Redis has run: every purchase that reaches
// Redis is exactly one.
func evalshas(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:calls="); ok {
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			return n
		}
	}
	return 0
}

// retryAfter returns the hint of a *domain.RetryError, or -1.
func retryAfter(err error) time.Duration {
	var re *domain.RetryError
	if errors.As(err, &re) {
		return re.After
	}
	return -1
}

// outcomes counts the answers of many purchases by error (nil: reserved).
type outcomes struct {
	mu sync.Mutex
	n  map[error]int
}

func (o *outcomes) add(t *testing.T, err error, allowed ...error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[error]int{}
	}
	if err == nil {
		o.n[nil]++
		return
	}
	for _, a := range allowed {
		if errors.Is(err, a) {
			o.n[a]++
			return
		}
	}
	t.Errorf("unexpected answer: %v", err)
}

func (o *outcomes) get(err error) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[err]
}

func TestUserIntervalHoldsAcrossNodes(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	a, b := node(t, rdb, clock, commands.GateConfig{}), node(t, rdb, clock, commands.GateConfig{})
	// 10 s: the script's keys expire on Redis's clock, so the interval must
	// outlast the test while the gate's clock stands still.
	sale := createSale(t, a, 100, 10, time.Minute, domain.Protections{UserIntervalMS: 10_000})
	users := []string{"ann", "ben", "cat"}

	burst := func() *outcomes {
		var (
			o  outcomes
			wg sync.WaitGroup
		)
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g := []*commands.Gate{a, b}[i%2]
				_, err := g.Purchase(context.Background(), commands.Purchase{SaleID: sale.ID,
					UserID: users[i%len(users)], IdempotencyKey: fmt.Sprintf("k%d-%d", clock.Now().Unix(), i)})
				if d := retryAfter(err); err != nil && (d <= 0 || d > 10*time.Second) {
					t.Errorf("rate limited with retry hint %v, want in (0, 10s]", d)
				}
				o.add(t, err, domain.ErrRateLimited)
			}()
		}
		wg.Wait()
		return &o
	}
	before := evalshas(t, rdb)
	o := burst()
	if got := o.get(nil); got != len(users) {
		t.Errorf("first burst: %d reserved, want one per user (%d)", got, len(users))
	}
	// Each node lets at most one attempt per user through to Redis; the
	// script refuses the other node's.
	if got := evalshas(t, rdb) - before; got > int64(2*len(users)) {
		t.Errorf("%d purchases reached Redis, want at most one per user per node (%d)", got, 2*len(users))
	}
	clock.Advance(9999 * time.Millisecond)
	if o := burst(); o.get(nil) != 0 {
		t.Errorf("a millisecond before the interval ends: %d reserved, want 0", o.get(nil))
	}
	clock.Advance(time.Millisecond)
	if o := burst(); o.get(nil) != len(users) {
		t.Errorf("after the interval: %d reserved, want %d", o.get(nil), len(users))
	}
	fd := (fixture{rdb: rdb, gate: a}).fold(t)
	for _, u := range users {
		if got := fd.Sales[sale.ID].Buyers[u]; got != 2 {
			t.Errorf("%s holds %d units, want 2 (one per interval)", u, got)
		}
	}
}

func TestUserIntervalAnswers(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	a, b := node(t, rdb, clock, commands.GateConfig{}), node(t, rdb, clock, commands.GateConfig{})
	ctx := context.Background()
	sale := createSale(t, a, 10, 5, time.Minute, domain.Protections{UserIntervalMS: 10_000})
	first, err := a.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann", IdempotencyKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(300 * time.Millisecond)
	for name, g := range map[string]*commands.Gate{"same node (memory)": a, "other node (script)": b} {
		// A retry of the order is not an attempt: it is answered.
		r, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann", IdempotencyKey: "k1"})
		if err != nil || r.OrderID != first.OrderID || !r.Replayed {
			t.Errorf("%s: retry of the order = %+v, %v; want replay of %s", name, r, err, first.OrderID)
		}
		_, err = g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann", IdempotencyKey: "k2"})
		if !errors.Is(err, domain.ErrRateLimited) || retryAfter(err) != 9700*time.Millisecond {
			t.Errorf("%s: a new attempt 300ms later = %v (retry %v), want rate limited, retry in 9.7s", name, err, retryAfter(err))
		}
		if r, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann", IdempotencyKey: "k1"}); err != nil || r.OrderID != first.OrderID {
			t.Errorf("%s: retry of the order after a refused attempt = %+v, %v", name, r, err)
		}
	}
	// Off (the default of an unstaged sale): nothing limits a user's pace.
	free := createSale(t, a, 10, 5, time.Minute, domain.Protections{})
	for i := range 3 {
		if _, err := a.Purchase(ctx, commands.Purchase{SaleID: free.ID, UserID: "ann", IdempotencyKey: strconv.Itoa(i)}); err != nil {
			t.Errorf("purchase %d without an interval: %v", i, err)
		}
	}
}

func TestStagedReleaseFollowsSchedule(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	g := node(t, rdb, clock, commands.GateConfig{})
	// Seed 000: 5 every 100 ms. 23 units: the last slice is short.
	sale := createSale(t, g, 23, 1, time.Minute, domain.Protections{
		ReleaseStep: 5, ReleaseIntervalMS: 100, UserIntervalMS: domain.UserIntervalOff})
	var (
		sold int
		user atomic.Int64
	)
	for slice := range 7 {
		// 30 ms into each slice, so the hint to the next one is 70 ms.
		clock.Set(t0.Add(time.Duration(slice)*100*time.Millisecond + 30*time.Millisecond))
		var (
			o  outcomes
			wg sync.WaitGroup
		)
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := g.Purchase(context.Background(), commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprintf("u%d", user.Add(1))})
				if errors.Is(err, domain.ErrNotYetReleased) && retryAfter(err) != 70*time.Millisecond {
					t.Errorf("slice %d: not yet released, retry in %v, want 70ms (the next slice)", slice, retryAfter(err))
				}
				o.add(t, err, domain.ErrNotYetReleased, domain.ErrSoldOut)
			}()
		}
		wg.Wait()
		want := min(5, 23-sold)
		if got := o.get(nil); got != want {
			t.Errorf("slice %d: %d reserved, want %d", slice, got, want)
		}
		sold += o.get(nil)
		if sold == 23 && o.get(domain.ErrNotYetReleased) > 0 {
			t.Errorf("slice %d: sold out, yet %d told not yet released", slice, o.get(domain.ErrNotYetReleased))
		}
	}
	if s := (fixture{rdb: rdb, gate: g}).fold(t).Sales[sale.ID]; s.ReservedQty != 23 {
		t.Errorf("reserved in the log = %d, want the stock (23)", s.ReservedQty)
	}
}

func TestStagedReleaseCountsExpiredUnitsAsAvailable(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	g := node(t, rdb, clock, commands.GateConfig{})
	ctx := context.Background()
	sale := createSale(t, g, 10, 1, time.Second, domain.Protections{ReleaseStep: 5, ReleaseIntervalMS: 100})
	buy := func(n int, prefix string) int {
		got := 0
		for i := range n {
			if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprintf("%s%d", prefix, i)}); err == nil {
				got++
			}
		}
		return got
	}
	if got := buy(8, "a"); got != 5 {
		t.Fatalf("first slice: %d reserved, want 5", got)
	}
	// All 10 released by now; the 5 reservations expire back into the pool.
	clock.Advance(2 * time.Second)
	if res, err := g.Sweep(ctx); err != nil || res.Expired != 5 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	if got := buy(12, "b"); got != 10 {
		t.Errorf("after the expiries: %d reserved, want all 10 (expired units are for sale again)", got)
	}
}

func TestPurchaseToken(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0.Add(-time.Minute))
	key := commands.DeriveTokenKey([]byte("jwt-secret-of-at-least-16-bytes"))
	a := node(t, rdb, clock, commands.GateConfig{TokenKey: key})
	b := node(t, rdb, clock, commands.GateConfig{TokenKey: key}) // another node, same key
	ctx := context.Background()
	sale := createSale(t, a, 100, 1, time.Minute, domain.Protections{RequireToken: true})
	other := createSale(t, a, 100, 1, time.Minute, domain.Protections{RequireToken: true})

	if _, err := a.PurchaseToken(ctx, sale.ID, "ann"); !errors.Is(err, domain.ErrNotStarted) || retryAfter(err) != time.Minute {
		t.Errorf("token before the start = %v (retry %v), want not started, retry in 1m", err, retryAfter(err))
	}
	clock.Set(t0)
	tok, err := a.PurchaseToken(ctx, sale.ID, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(2 * time.Minute); !tok.ExpiresAt.Equal(want) || tok.Header != commands.PurchaseTokenHeader {
		t.Errorf("token %+v, want expiry %v", tok, want)
	}
	otherTok, err := a.PurchaseToken(ctx, other.ID, "ann")
	if err != nil {
		t.Fatal(err)
	}
	// The first character of the signature carries six data bits (the last
	// one carries padding bits a decoder may ignore).
	sigAt := strings.LastIndexByte(tok.Token, '.') + 1
	flip := byte('A')
	if tok.Token[sigAt] == 'A' {
		flip = 'B'
	}
	tampered := tok.Token[:sigAt] + string(flip) + tok.Token[sigAt+1:]
	refused := []struct {
		name, user, token string
	}{
		{"no token", "ann", ""},
		{"someone else's token", "bob", tok.Token},
		{"another sale's token", "ann", otherTok.Token},
		{"tampered signature", "ann", tampered},
		{"later expiry, same signature", "ann", strings.Replace(tok.Token, ".", ".9", 1)},
		{"garbage", "ann", "v1.x.y"},
		{"oversized", "ann", strings.Repeat("v", 4096)},
	}
	for _, tc := range refused {
		if _, err := b.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: tc.user, Token: tc.token}); !errors.Is(err, domain.ErrTokenRequired) {
			t.Errorf("%s: %v, want token required", tc.name, err)
		}
	}
	// Many shoppers at once, half with their own token, half with a stolen
	// one: exactly the first half buy, and the others never reach Redis.
	tokens := map[string]string{}
	for i := range 40 {
		u := fmt.Sprintf("u%d", i)
		tk, err := a.PurchaseToken(ctx, sale.ID, u)
		if err != nil {
			t.Fatal(err)
		}
		tokens[u] = tk.Token
	}
	before := evalshas(t, rdb)
	var (
		o  outcomes
		wg sync.WaitGroup
	)
	for i := range 80 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := fmt.Sprintf("u%d", i%40)
			token := tokens[u]
			if i >= 40 {
				u = fmt.Sprintf("thief%d", i)
			}
			_, err := []*commands.Gate{a, b}[i%2].Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: u, Token: token})
			o.add(t, err, domain.ErrTokenRequired)
		}()
	}
	wg.Wait()
	if o.get(nil) != 40 || o.get(domain.ErrTokenRequired) != 40 {
		t.Errorf("reserved %d, token required %d; want 40 and 40", o.get(nil), o.get(domain.ErrTokenRequired))
	}
	if got := evalshas(t, rdb) - before; got != 40 {
		t.Errorf("%d purchases reached Redis, want only the 40 with a valid token", got)
	}
	// The token lapses; a fresh one works.
	clock.Advance(2 * time.Minute)
	if _, err := b.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann", Token: tok.Token}); !errors.Is(err, domain.ErrTokenRequired) {
		t.Errorf("expired token: %v, want token required", err)
	}
	fresh, err := b.PurchaseToken(ctx, sale.ID, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann", Token: fresh.Token}); err != nil {
		t.Errorf("fresh token: %v", err)
	}
	// A node without the key mints nothing, and its require_token sales sell nothing.
	keyless := node(t, rdb, clock, commands.GateConfig{})
	if _, err := keyless.PurchaseToken(ctx, sale.ID, "ann"); err == nil {
		t.Error("a gate without a key minted a token")
	}
	if _, err := keyless.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "zed", Token: fresh.Token}); !errors.Is(err, domain.ErrTokenRequired) {
		t.Errorf("keyless node: %v, want token required", err)
	}
}

// TestVerifyTokenAllocs: checking a token costs no allocation (not parallel:
// AllocsPerRun counts the whole process).
func TestVerifyTokenAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race; allocation counts mean nothing there")
	}
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	g := node(t, rdb, clock, commands.GateConfig{TokenKey: commands.DeriveTokenKey([]byte("jwt-secret-of-at-least-16-bytes"))})
	sale := createSale(t, g, 1, 1, time.Minute, domain.Protections{RequireToken: true})
	tok, err := g.PurchaseToken(context.Background(), sale.ID, "ann")
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	if n := testing.AllocsPerRun(1000, func() {
		if !g.VerifyToken(tok.Token, sale.ID, "ann", now) {
			t.Fatal("valid token refused")
		}
	}); n != 0 {
		t.Errorf("verifying a token allocates %v times", n)
	}
}

func TestSoldOutShortCircuit(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	// A TTL longer than the test: here no request may re-check.
	cfg := commands.GateConfig{SoldOutTTL: time.Hour}
	a, b := node(t, rdb, clock, cfg), node(t, rdb, clock, cfg)
	watch(t, rdb, a, 1)
	watch(t, rdb, b, 2)
	ctx := context.Background()
	sale := createSale(t, a, 1, 1, time.Minute, domain.Protections{})
	// b has served the sale before (a node learns a sale's notifications
	// once it has seen the sale: only nodes serving it need them).
	if _, err := b.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "early", Quantity: 2}); !errors.Is(err, domain.ErrLimitReached) {
		t.Fatalf("warm-up: %v", err)
	}
	ann, err := a.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	if !a.SoldOutFlag(sale.ID) {
		t.Error("the node that sold the last unit does not know it")
	}
	eventually(t, "the other node hears of the sell-out", func() bool { return b.SoldOutFlag(sale.ID) })

	before := evalshas(t, rdb)
	var (
		o  outcomes
		wg sync.WaitGroup
	)
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := []*commands.Gate{a, b}[i%2].Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprintf("u%d", i)})
			o.add(t, err, domain.ErrSoldOut)
		}()
	}
	wg.Wait()
	if o.get(domain.ErrSoldOut) != 400 {
		t.Errorf("%d of 400 told sold out", o.get(domain.ErrSoldOut))
	}
	if got := evalshas(t, rdb) - before; got != 0 {
		t.Errorf("the burst after sell-out ran %d purchase scripts, want 0", got)
	}

	// The trade-off, as documented: the buyer's retry is answered by the node
	// that made the order (it remembers it); another node says sold out.
	if r, err := a.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"}); err != nil || r.OrderID != ann.OrderID || !r.Replayed {
		t.Errorf("retry on the node that made the order = %+v, %v; want the order", r, err)
	}
	if _, err := b.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"}); !errors.Is(err, domain.ErrSoldOut) {
		t.Errorf("retry on another node = %v, want sold out", err)
	}

	// The order expires, its unit returns to the pool: both nodes hear it.
	clock.Advance(2 * time.Minute)
	if res, err := a.Sweep(ctx); err != nil || res.Expired != 1 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	eventually(t, "both nodes hear the stock is back", func() bool { return !a.SoldOutFlag(sale.ID) && !b.SoldOutFlag(sale.ID) })
	if _, err := b.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "bob"}); err != nil {
		t.Errorf("purchase after the unit came back: %v", err)
	}
	// The sale ends: both nodes answer ended from memory.
	if _, err := a.EndSale(ctx, commands.EndSale{SaleID: sale.ID}); err != nil {
		t.Fatal(err)
	}
	before = evalshas(t, rdb)
	eventually(t, "the other node hears the end", func() bool {
		_, err := b.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "carl"})
		return errors.Is(err, domain.ErrEnded) && evalshas(t, rdb) == before
	})
}

func TestSoldOutFlagLapsesToOneRecheck(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	// Long enough that the sell-out and the sweep fit in it on a busy machine.
	const ttl = 2 * time.Second
	// No watcher: this node misses every notification and has only the TTL.
	g := node(t, rdb, clock, commands.GateConfig{SoldOutTTL: ttl})
	ctx := context.Background()
	sale := createSale(t, g, 1, 1, time.Minute, domain.Protections{})
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"}); err != nil {
		t.Fatal(err)
	}
	// Another node expires ann's order: the unit is back, and g was not told.
	clock.Advance(2 * time.Minute)
	sweeper := node(t, rdb, clock, commands.GateConfig{})
	if res, err := sweeper.Sweep(ctx); err != nil || res.Expired != 1 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	lapse := time.Now().Add(ttl)
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "early"}); !errors.Is(err, domain.ErrSoldOut) {
		t.Fatalf("within the TTL: %v, want the (stale) sold out", err)
	}
	time.Sleep(time.Until(lapse) + 50*time.Millisecond)
	// The flag has lapsed: of a burst, exactly one request asks Redis, finds
	// the unit and buys it; the others keep hearing sold out.
	before := evalshas(t, rdb)
	var (
		o     outcomes
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprintf("u%d", i)})
			o.add(t, err, domain.ErrSoldOut)
		}()
	}
	close(start)
	wg.Wait()
	if got := evalshas(t, rdb) - before; got != 1 || o.get(nil) != 1 {
		t.Errorf("after the lapse: %d scripts ran, %d reserved; want exactly 1 and 1", got, o.get(nil))
	}
}

func TestBlacklist(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	a, b := node(t, rdb, clock, commands.GateConfig{}), node(t, rdb, clock, commands.GateConfig{})
	stale := node(t, rdb, clock, commands.GateConfig{}) // no watcher: its copy never changes
	watch(t, rdb, a, 1)
	watch(t, rdb, b, 2)
	ctx := context.Background()
	s1 := createSale(t, a, 1000, 1, time.Minute, domain.Protections{})

	var ve *domain.ValidationError
	if err := a.Block(ctx, "not an id!"); !errors.As(err, &ve) {
		t.Errorf("block a bad id: %v", err)
	}
	bad := make([]string, 20)
	for i := range bad {
		bad[i] = fmt.Sprintf("bot%02d", i)
		if err := a.Block(ctx, bad[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Block(ctx, "bot00"); err != nil {
		t.Errorf("blocking twice: %v", err)
	}
	eventually(t, "the other node hears of the blocks", func() bool { return b.BlockedHere("bot19") })
	if stale.BlockedHere("bot00") {
		t.Fatal("the node without a watcher knows the blacklist")
	}
	if got, err := a.Blacklist(ctx); err != nil || len(got) != 20 || got[0] != "bot00" || got[19] != "bot19" {
		t.Errorf("blacklist = %v, %v", got, err)
	}
	s2 := createSale(t, a, 1000, 1, time.Minute, domain.Protections{}) // created after the blocks

	// Blocked and honest users on every node, both sales: the blocked never
	// buy, not even through the node with the stale copy (the script checks).
	nodes := []*commands.Gate{a, b, stale}
	var (
		o      outcomes
		wg     sync.WaitGroup
		scoped atomic.Int64 // blocked attempts that only the script could refuse
	)
	before := evalshas(t, rdb)
	for i := range 240 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, sale := i%3, []string{s1.ID, s2.ID}[i/3%2]
			user := fmt.Sprintf("honest%d", i)
			if i%2 == 0 {
				user = bad[i/2%20]
				if n == 2 {
					scoped.Add(1)
				}
			}
			_, err := nodes[n].Purchase(ctx, commands.Purchase{SaleID: sale, UserID: user, IdempotencyKey: strconv.Itoa(i)})
			if err == nil && strings.HasPrefix(user, "bot") {
				t.Errorf("%s bought in sale %s on node %d", user, sale, n)
			}
			o.add(t, err, domain.ErrBlocked)
		}()
	}
	wg.Wait()
	if o.get(nil) != 120 || o.get(domain.ErrBlocked) != 120 {
		t.Errorf("reserved %d, blocked %d; want 120 and 120", o.get(nil), o.get(domain.ErrBlocked))
	}
	// Nodes with a fresh copy refuse blocked users without Redis.
	if got, want := evalshas(t, rdb)-before, 120+scoped.Load(); got != want {
		t.Errorf("%d scripts ran, want %d (the honest, plus the blocked on the stale node)", got, want)
	}

	if err := a.Unblock(ctx, "bot00"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unblock(ctx, "never-blocked"); err != nil {
		t.Errorf("unblocking a user who is not blocked: %v", err)
	}
	eventually(t, "the other node hears of the unblock", func() bool { return !b.BlockedHere("bot00") })
	for i, g := range []*commands.Gate{b, stale} {
		if _, err := g.Purchase(ctx, commands.Purchase{SaleID: []string{s1.ID, s2.ID}[i], UserID: "bot00", IdempotencyKey: "after"}); err != nil {
			t.Errorf("node %d, unblocked user: %v", i, err)
		}
	}
	// A node catches up on what it missed when it refreshes.
	if err := stale.RefreshBlacklist(ctx); err != nil || !stale.BlockedHere("bot01") || stale.BlockedHere("bot00") {
		t.Errorf("after refresh: bot01 %v, bot00 %v (%v)", stale.BlockedHere("bot01"), stale.BlockedHere("bot00"), err)
	}
}

func TestAdmissionLimit(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	g := node(t, rdb, clock, commands.GateConfig{AdmissionRPS: 5, AdmissionBurst: 5})
	ctx := context.Background()
	sale := createSale(t, g, 1000, 1, time.Minute, domain.Protections{})
	// Loading the sale and this purchase take two of the bucket's 5 tokens.
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "first"}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	var (
		o  outcomes
		wg sync.WaitGroup
	)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: fmt.Sprintf("u%d", i)})
			if err != nil && retryAfter(err) != time.Second {
				t.Errorf("admission refusal %v, want a retry hint of 1s", err)
			}
			o.add(t, err, domain.ErrRateLimited)
		}()
	}
	wg.Wait()
	// 3 tokens left, refilled at 5/s.
	limit := 3 + int(5*time.Since(begin).Seconds()) + 1
	if got := o.get(nil); got < 1 || got > limit {
		t.Errorf("%d admitted of 100, want between 1 and %d", got, limit)
	}
	if o.get(nil)+o.get(domain.ErrRateLimited) != 100 {
		t.Errorf("answers: %v", o.n)
	}
}

func TestPurchaseRedisTimeout(t *testing.T) {
	t.Parallel()
	srv := testenv.Redis(t)
	// As serve opens it: deadlines reach the socket.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Options().Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	clock := commands.NewManualClock(t0)
	g := node(t, rdb, clock, commands.GateConfig{RedisTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	sale := createSale(t, g, 10, 1, time.Minute, domain.Protections{})
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Do(ctx, "CLIENT", "PAUSE", 2000, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "bob"})
	if took := time.Since(begin); !errors.Is(err, context.DeadlineExceeded) || took > time.Second {
		t.Errorf("purchase while Redis hangs: %v after %v, want a deadline error after about 100ms", err, took)
	}
}

// TestRetryAfterTimeoutReachesScript: a purchase whose Redis call failed may
// or may not have been counted, so the node does not count it: the retry goes
// to the script, which answers with the order if there is one.
func TestRetryAfterTimeoutReachesScript(t *testing.T) {
	t.Parallel()
	srv := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Options().Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	clock := commands.NewManualClock(t0)
	g := node(t, rdb, clock, commands.GateConfig{RedisTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	sale := createSale(t, g, 10, 1, time.Minute, domain.Protections{UserIntervalMS: 60_000})
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "warm"}); err != nil {
		t.Fatal(err)
	}
	// Another client's script keeps Redis busy for 600 ms. Ann's purchase
	// waits in the socket, her node gives up at 200 ms, and Redis runs it
	// afterwards: an order the client never heard of.
	busy := make(chan error, 1)
	go func() {
		busy <- srv.Eval(ctx, `local s = redis.call('TIME')
repeat local n = redis.call('TIME') until (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 600000
return 1`, nil).Err()
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("purchase while Redis is busy: %v, want a timeout", err)
	}
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
	// Redis normally runs the queued command once it is free; on a loaded
	// machine the client may have closed the socket first. Either way the
	// node must let the retry through to the script (no local rate limit for
	// an attempt it could not count), and if an order was made, return it.
	ran := false
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && !ran {
		n, err := srv.HLen(ctx, "seckill:{sale:"+sale.ID+"}:idem").Result()
		ran = err == nil && n == 2
		time.Sleep(20 * time.Millisecond)
	}
	r, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"})
	switch {
	case err != nil:
		t.Errorf("retry after the timeout: %v; want it to reach the script", err)
	case ran && !r.Replayed:
		t.Errorf("retry after the timeout = %+v; want the order the timed-out purchase made", r)
	case !ran && r.Replayed:
		t.Errorf("retry after the timeout replayed an order that was never made: %+v", r)
	}
	t.Logf("the timed-out purchase ran in Redis: %v", ran)
}

// TestMemoryRefusalAllocs: a refusal from memory (sold out, blocked, token
// required) allocates nothing in the gate (not parallel: AllocsPerRun counts
// the whole process).
func TestMemoryRefusalAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under -race")
	}
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	g := node(t, rdb, clock, commands.GateConfig{SoldOutTTL: time.Hour})
	ctx := context.Background()
	sale := createSale(t, g, 1, 1, time.Minute, domain.Protections{})
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"}); err != nil {
		t.Fatal(err)
	}
	if err := g.Block(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	tokened := createSale(t, g, 1, 1, time.Minute, domain.Protections{RequireToken: true})
	for _, tc := range []struct {
		cmd  commands.Purchase
		want error
	}{
		{commands.Purchase{SaleID: sale.ID, UserID: "bob"}, domain.ErrSoldOut},
		{commands.Purchase{SaleID: sale.ID, UserID: "mallory"}, domain.ErrBlocked},
		{commands.Purchase{SaleID: tokened.ID, UserID: "bob", Token: "v1.1.x"}, domain.ErrTokenRequired},
	} {
		if _, err := g.Purchase(ctx, tc.cmd); err != tc.want {
			t.Fatalf("%+v: %v, want %v", tc.cmd, err, tc.want)
		}
		if n := testing.AllocsPerRun(1000, func() { _, _ = g.Purchase(ctx, tc.cmd) }); n != 0 {
			t.Errorf("%v from memory allocates %v times per purchase", tc.want, n)
		}
	}
}

// TestMemorySoldOut: the read-only question the HTTP layer asks before it
// verifies a token. Sold out only once this node learnt it and while the
// flag is fresh; excepted for a blocked user and for a user whose order this
// node knows under the key asked.
func TestMemorySoldOut(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	g := node(t, rdb, clock, commands.GateConfig{SoldOutTTL: time.Hour})
	sale, err := g.CreateSale(ctx, commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: 1, PriceCents: 100, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: 1, PayWithinS: 60,
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if so, _ := g.MemorySoldOut(sale.ID, "", ""); so {
		t.Fatal("sold out before anyone bought")
	}
	if _, err := g.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := g.Block(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, key         string
		soldOut, excepted bool
	}{
		{"", "", true, false},
		{"bob", "", true, false},
		{"ann", "k", true, true},
		{"ann", "other", true, false},
		{"mallory", "", true, true},
	} {
		so, ex := g.MemorySoldOut(sale.ID, c.user, c.key)
		if so != c.soldOut || ex != c.excepted {
			t.Errorf("MemorySoldOut(%q, %q) = %v, %v; want %v, %v", c.user, c.key, so, ex, c.soldOut, c.excepted)
		}
	}
	if so, _ := g.MemorySoldOut("nosuchsale", "bob", ""); so {
		t.Error("an unknown sale is sold out")
	}
	clock.Advance(2 * time.Hour)
	if so, _ := g.MemorySoldOut(sale.ID, "bob", ""); so {
		t.Error("sold out after the end: the answer is ended, not sold_out")
	}
}

// TestSaleViewKnowsSoldOut: a node's cached sale view shows the sell-out as
// soon as the node answers sold_out from memory, on the node that sold the
// last unit and on one that heard of it, and the stock again once it is back.
func TestSaleViewKnowsSoldOut(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0)
	cfg := commands.GateConfig{SoldOutTTL: time.Hour, SaleCacheTTL: time.Hour}
	a, b := node(t, rdb, clock, cfg), node(t, rdb, clock, cfg)
	watch(t, rdb, a, 1)
	watch(t, rdb, b, 2)
	ctx := context.Background()
	sale := createSale(t, a, 1, 1, time.Minute, domain.Protections{})
	view := func(g *commands.Gate) commands.SaleView {
		t.Helper()
		v, err := g.Sale(ctx, sale.ID)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// b serves the sale's purchases too (a node hears a sale's news once
	// it has served it).
	if _, err := b.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "early", Quantity: 2}); !errors.Is(err, domain.ErrLimitReached) {
		t.Fatalf("warm-up: %v", err)
	}
	for i, g := range []*commands.Gate{a, b} {
		if v := view(g); v.Remaining != 1 || v.State != commands.SaleActive {
			t.Fatalf("node %d before: remaining %d, %s", i, v.Remaining, v.State)
		}
	}
	if _, err := a.Purchase(ctx, commands.Purchase{SaleID: sale.ID, UserID: "ann"}); err != nil {
		t.Fatal(err)
	}
	if v := view(a); v.Remaining != 0 || v.State != commands.SaleSoldOut {
		t.Errorf("the selling node's view: remaining %d, %s; want 0, sold_out", v.Remaining, v.State)
	}
	eventually(t, "the other node's view shows the sell-out", func() bool {
		v := view(b)
		return v.Remaining == 0 && v.State == commands.SaleSoldOut
	})
	clock.Advance(2 * time.Minute)
	if res, err := a.Sweep(ctx); err != nil || res.Expired != 1 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	eventually(t, "both views show the unit back", func() bool {
		va, vb := view(a), view(b)
		return va.Remaining == 1 && vb.Remaining == 1 && va.State == commands.SaleActive && vb.State == commands.SaleActive
	})
}
