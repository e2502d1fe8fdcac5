package draw_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seckill/seckill/commands"
	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/draw"
	"github.com/seckill/seckill/internal/testenv"
)

var recordCorpus = flag.Bool("record-corpus", false, "write the DrawHeld envelope the draw produces into domain/testdata/corpus")

var t0 = time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)

type fixture struct {
	rdb   *redis.Client
	clock *commands.ManualClock
	gate  *commands.Gate
	draws *draw.Draws
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	rdb := testenv.Redis(t)
	clock := commands.NewManualClock(t0.Add(-time.Minute))
	g, err := commands.NewGate(commands.GateConfig{Clock: clock, SaleCacheTTL: time.Nanosecond, TokenKey: []byte("0123456789abcdef0123456789abcdef")}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	d, err := draw.New(draw.Config{Grace: 20 * time.Millisecond}, g, rdb)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{rdb: rdb, clock: clock, gate: g, draws: d}
}

func (f *fixture) sale(t *testing.T, stock, step, limit int64, requireToken bool) commands.SaleView {
	t.Helper()
	p := domain.Protections{ReleaseStep: step, ReleaseIntervalMS: 1000, ReleaseMode: domain.ReleaseModeDraw, RequireToken: requireToken}
	v, err := f.gate.CreateSale(context.Background(), commands.CreateSale{Spec: domain.SaleSpec{
		SaleTerms: domain.SaleTerms{
			Name: "phone", Stock: stock, PriceCents: 1999, StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: limit, PayWithinS: 900,
		},
		Protections: p,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if v.ReleaseMode != domain.ReleaseModeDraw {
		t.Fatalf("the gate's view of a draw sale says release_mode %q", v.ReleaseMode)
	}
	return v
}

func (f *fixture) view(t *testing.T, id string) commands.SaleView {
	t.Helper()
	v, err := f.gate.Sale(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *fixture) enter(t *testing.T, id, user string) (draw.Entry, error) {
	t.Helper()
	return f.draws.Enter(context.Background(), f.view(t, id), user)
}

// logEvents reads every outbox stream the relay would forward: the gate's
// and the draws'.
func (f *fixture) logEvents(t *testing.T) [][]byte {
	t.Helper()
	ctx := context.Background()
	streams, err := f.rdb.SMembers(ctx, f.gate.OutboxesKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, st := range streams {
		entries, err := f.rdb.XRange(ctx, st, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			for i := 1; i <= len(e.Values); i++ {
				out = append(out, []byte(e.Values[strconv.Itoa(i)].(string)))
			}
		}
	}
	return out
}

func audit(t *testing.T, envs [][]byte) (*domain.DrawAudit, []domain.DrawHeld) {
	t.Helper()
	a := domain.NewDrawAudit()
	var held []domain.DrawHeld
	for _, raw := range envs {
		env, ev, err := domain.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		a.Apply(env, ev)
		if d, ok := ev.(domain.DrawHeld); ok {
			held = append(held, d)
		}
	}
	return a, held
}

func TestDrawSlices(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sale := f.sale(t, 5, 2, 1, true)

	// Before the start: not started, with the wait.
	var re *domain.RetryError
	if _, err := f.enter(t, sale.ID, "early"); !errors.Is(err, domain.ErrNotStarted) || !errors.As(err, &re) || re.After != time.Minute {
		t.Fatalf("enter before the start: %v, want not started, retry in 1m", err)
	}

	// Slice 0: twelve users enter at different moments of its window; one
	// enters twice. Nobody is served at once, however fast.
	f.clock.Advance(time.Minute + 10*time.Millisecond)
	for i := range 12 {
		e, err := f.enter(t, sale.ID, fmt.Sprintf("u%02d", i))
		if err != nil || e.Slice != 0 || e.Status != "entered" {
			t.Fatalf("enter u%02d: %+v, %v; want entered in slice 0", i, e, err)
		}
		f.clock.Advance(50 * time.Millisecond)
	}
	if e, err := f.enter(t, sale.ID, "u03"); err != nil || !e.Again {
		t.Errorf("u03 enters again: %+v, %v; want the same entry", e, err)
	}
	if c, _, _ := f.gate.SaleCounters(ctx, sale.ID); c.Remaining != 5 {
		t.Fatalf("the gate sold during the window: remaining %d", c.Remaining)
	}
	// Not drawn while the window is open.
	if err := f.draws.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.draws.Result(ctx, f.view(t, sale.ID), "u00"); r.Status != "entered" {
		t.Fatalf("u00 before the draw: %+v", r)
	}

	// The window closes; two drawers run at once: the slice is drawn once.
	f.clock.Advance(time.Second)
	other, err := draw.New(draw.Config{Grace: 20 * time.Millisecond}, f.gate, f.rdb)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, d := range []*draw.Draws{f.draws, other} {
		wg.Go(func() {
			if err := d.RunOnce(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// The lease may have kept the second drawer out: run both again.
	for _, d := range []*draw.Draws{f.draws, other} {
		if err := d.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	winners := map[string]string{}
	for i := range 12 {
		u := fmt.Sprintf("u%02d", i)
		r, err := f.draws.Result(ctx, f.view(t, sale.ID), u)
		if err != nil {
			t.Fatal(err)
		}
		switch r.Status {
		case "ordered":
			winners[u] = r.OrderID
		case "lost":
		default:
			t.Errorf("%s after the draw: %+v, want ordered or lost", u, r)
		}
	}
	if len(winners) != 2 {
		t.Fatalf("slice 0 of 2 units has %d winners: %v", len(winners), winners)
	}
	if c, _, _ := f.gate.SaleCounters(ctx, sale.ID); c.Remaining != 3 {
		t.Errorf("after slice 0: remaining %d, want 3", c.Remaining)
	}

	// Slice 1 (the clock is in it now): everyone tries again, the winners
	// too (limit 1: a winner of both slices is refused the second unit).
	for i := range 12 {
		u := fmt.Sprintf("u%02d", i)
		if e, err := f.enter(t, sale.ID, u); err != nil || e.Slice != 1 {
			t.Fatalf("enter %s in slice 1: %+v, %v", u, e, err)
		}
	}
	f.clock.Advance(time.Second)
	if err := f.draws.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}

	// Slices 2 and 3 have nobody: no record. Slice 4: one entrant, who wins.
	f.clock.Advance(2 * time.Second)
	if _, err := f.enter(t, sale.ID, "late"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := f.draws.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.draws.Result(ctx, f.view(t, sale.ID), "late"); r.Status != "ordered" || r.Slice != 4 {
		t.Errorf("the only entrant of slice 4: %+v, want ordered", r)
	}

	// The log: three draws, each drawn again by the audit; every order of
	// the sale went to a winner of its slice.
	envs := f.logEvents(t)
	a, held := audit(t, envs)
	if v := a.Violations(); len(v) > 0 {
		t.Errorf("audit of a true log: %v", v)
	}
	if len(held) != 3 {
		t.Fatalf("%d DrawHeld in the log, want 3 (slices 0, 1, 4)", len(held))
	}
	orders := 0
	for _, raw := range envs {
		if env, _, _ := domain.Decode(raw); env.Type == domain.TypeOrderPlaced {
			orders++
		}
	}
	if orders < 4 || orders > 5 {
		t.Errorf("%d orders placed, want 4 or 5 (2 + 2 minus a refused winner of two slices + 1)", orders)
	}

	slices.SortFunc(held, func(a, b domain.DrawHeld) int { return int(a.Slice - b.Slice) })
	// Slice 4 offers what is released (all 5) and not held by the orders
	// before it: a refused winner of slice 1 left one unit more.
	if held[0].Units != 2 || len(held[0].Entrants) != 12 || held[1].Units != 2 || held[2].Slice != 4 || held[2].Units != int64(5-(orders-1)) {
		t.Errorf("draws: %+v", held)
	}
	// A forged draw in the log is caught.
	forged := held[0]
	forged.Winners = []string{held[0].Entrants[0], held[0].Entrants[1]}
	if slices.Equal(forged.Winners, held[0].Winners) {
		forged.Winners = []string{held[0].Entrants[2], held[0].Entrants[3]}
	}
	b := domain.NewDrawAudit()
	for _, raw := range envs {
		env, ev, _ := domain.Decode(raw)
		if d, ok := ev.(domain.DrawHeld); ok && d.Slice == 0 {
			ev = forged
		}
		b.Apply(env, ev)
	}
	if len(b.Violations()) == 0 {
		t.Error("the audit found nothing in a log whose slice 0 went to others than the draw picked")
	}
	recordDrawHeld(t, envs)
}

func TestDrawEntrantCap(t *testing.T) {
	f := newFixture(t)
	sale := f.sale(t, 10, 1, 1, false)
	f.clock.Advance(time.Minute)
	limit := domain.DrawEntrantCap(1)
	for i := range limit {
		if _, err := f.enter(t, sale.ID, fmt.Sprintf("u%05d", i)); err != nil {
			t.Fatalf("entrant %d of %d: %v", i, limit, err)
		}
	}
	var re *domain.RetryError
	if _, err := f.enter(t, sale.ID, "one-too-many"); !errors.Is(err, draw.ErrFull) || !errors.As(err, &re) || re.After != time.Second {
		t.Fatalf("entrant past the cap: %v, want full, retry at the next slice (1s)", err)
	}
	f.clock.Advance(time.Second)
	if e, err := f.enter(t, sale.ID, "one-too-many"); err != nil || e.Slice != 1 {
		t.Errorf("the next slice: %+v, %v", e, err)
	}
}

// recordDrawHeld writes the DrawHeld envelope into the domain's corpus of
// recorded events (go test ./draw -run TestDrawSlices -record-corpus).
func recordDrawHeld(t *testing.T, envs [][]byte) {
	if !*recordCorpus {
		return
	}
	for _, raw := range envs {
		if env, _, _ := domain.Decode(raw); env.Type != domain.TypeDrawHeld {
			continue
		}
		p := filepath.Join("..", "domain", "testdata", "corpus", "DrawHeld.v1.e2.json")
		if _, err := os.Stat(p); err == nil {
			return
		}
		if err := os.WriteFile(p, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s", p)
		return
	}
}
