package domain_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
)

func seedOf(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%03d", i)
	}
	return out
}

func TestDrawIsReproducibleAndFair(t *testing.T) {
	t.Parallel()
	entrants := users(50)
	a := domain.Draw(seedOf(1), entrants, 5)
	// The order the entrants come in does not matter, nor do repeats.
	shuffled := append(slices.Clone(entrants), entrants[3], entrants[7])
	slices.Reverse(shuffled)
	if b := domain.Draw(seedOf(1), shuffled, 5); !slices.Equal(a, b) {
		t.Fatalf("same seed and entrants drew %v, then %v", a, b)
	}
	if c := domain.Draw(seedOf(2), entrants, 5); slices.Equal(a, c) {
		t.Errorf("two seeds drew the same winners %v", a)
	}
	if len(a) != 5 || len(slices.Compact(slices.Sorted(slices.Values(a)))) != 5 {
		t.Errorf("winners %v: want 5 distinct", a)
	}
	for _, w := range a {
		if !slices.Contains(entrants, w) {
			t.Errorf("winner %s did not enter", w)
		}
	}
	// A golden draw: the algorithm must never change, or the audit of old
	// draws would fail.
	if got, want := strings.Join(domain.Draw(seedOf(7), users(10), 3), ","), goldenDraw; got != want {
		t.Errorf("Draw(seed 7…, u000..u009, 3) = %s, want %s (the draw algorithm changed)", got, want)
	}

	tests := []struct {
		name     string
		entrants []string
		units    int64
		want     int
	}{
		{"more units than entrants", users(3), 10, 3},
		{"no entrants", nil, 5, 0},
		{"no units", users(5), 0, 0},
		{"negative units", users(5), -1, 0},
		{"everyone wins", users(8), 8, 8},
	}
	for _, tc := range tests {
		if got := domain.Draw(seedOf(3), tc.entrants, tc.units); len(got) != tc.want {
			t.Errorf("%s: %d winners, want %d", tc.name, len(got), tc.want)
		}
	}

	// Every entrant has the same chance: 20 entrants, 1 unit, 20000 seeds;
	// each should win about 1000 times (binomial σ ≈ 31; ±200 is > 6σ).
	wins := map[string]int{}
	for i := range 20000 {
		seed := make([]byte, 32)
		copy(seed, fmt.Sprint(i))
		wins[domain.Draw(seed, users(20), 1)[0]]++
	}
	for _, u := range users(20) {
		if wins[u] < 800 || wins[u] > 1200 {
			t.Errorf("%s won %d of 20000 draws, want about 1000", u, wins[u])
		}
	}
}

// goldenDraw was computed by an independent implementation of the
// algorithm Draw documents (Python: hashlib.sha256, struct.pack(">QQ", i, try)),
// not copied from Draw's output.
const goldenDraw = "u002,u008,u001"

func TestCheckDraw(t *testing.T) {
	t.Parallel()
	good := domain.DrawHeld{
		SaleID: "s1", DrawID: domain.DrawIDOf("s1", 4), Slice: 4, ClosedAt: time.Unix(100, 0).UTC(),
		Seed: hex.EncodeToString(seedOf(9)), Units: 2, Entrants: users(6),
	}
	good.Winners = domain.Draw(seedOf(9), good.Entrants, 2)
	if p := domain.CheckDraw(good); p != nil {
		t.Fatalf("a true draw: %v", p)
	}
	tamper := map[string]func(*domain.DrawHeld){
		"other winners":       func(e *domain.DrawHeld) { e.Winners = []string{"u000", "u001"} },
		"a winner who lost":   func(e *domain.DrawHeld) { e.Winners = append(e.Winners[:1:1], "u005") },
		"more units recorded": func(e *domain.DrawHeld) { e.Units = 3 },
		"an entrant dropped":  func(e *domain.DrawHeld) { e.Entrants = e.Entrants[1:] },
		"another seed":        func(e *domain.DrawHeld) { e.Seed = hex.EncodeToString(seedOf(8)) },
		"a short seed":        func(e *domain.DrawHeld) { e.Seed = "abcd" },
		"unsorted entrants":   func(e *domain.DrawHeld) { e.Entrants[0], e.Entrants[1] = e.Entrants[1], e.Entrants[0] },
		"wrong id":            func(e *domain.DrawHeld) { e.DrawID = "s1-draw-5" },
	}
	for name, f := range tamper {
		e := good
		e.Entrants, e.Winners = slices.Clone(good.Entrants), slices.Clone(good.Winners)
		f(&e)
		if p := domain.CheckDraw(e); len(p) == 0 {
			t.Errorf("%s: CheckDraw found nothing", name)
		}
	}
}

func TestDrawAudit(t *testing.T) {
	t.Parallel()
	at := time.Unix(1000, 0).UTC()
	spec := domain.SaleCreated{SaleID: "s1", SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
		Stock: 4, PerUserLimit: 1,
	}}}
	spec.ReleaseStep, spec.ReleaseIntervalMS, spec.ReleaseMode = 2, 100, domain.ReleaseModeDraw
	d0 := domain.DrawHeld{SaleID: "s1", DrawID: domain.DrawIDOf("s1", 0), Slice: 0, ClosedAt: at,
		Seed: hex.EncodeToString(seedOf(1)), Units: 2, Entrants: users(5)}
	d0.Winners = domain.Draw(seedOf(1), d0.Entrants, 2)
	loser := ""
	for _, u := range d0.Entrants {
		if !slices.Contains(d0.Winners, u) {
			loser = u
		}
	}
	order := func(id, user, key string) domain.OrderPlaced {
		return domain.OrderPlaced{OrderID: id, SaleID: "s1", UserID: user, Quantity: 1, IdempotencyKey: key}
	}
	tests := []struct {
		name   string
		events []domain.Event
		want   string // a violation contains this; "" for none
	}{
		{"winners ordered", []domain.Event{spec, d0, order("o1", d0.Winners[0], "draw-0"), order("o2", d0.Winners[1], "draw-0")}, ""},
		{"order before its draw in the log", []domain.Event{order("o1", d0.Winners[0], "draw-0"), spec, d0}, ""},
		{"a loser ordered", []domain.Event{spec, d0, order("o1", loser, "draw-0")}, "did not win"},
		{"an order without a draw", []domain.Event{spec, d0, order("o1", d0.Winners[0], "")}, "without a draw"},
		{"an undrawn slice", []domain.Event{spec, d0, order("o1", d0.Winners[0], "draw-1")}, "never drawn"},
		{"a draw redrawn", []domain.Event{spec, d0, func() domain.DrawHeld { e := d0; e.Seed = hex.EncodeToString(seedOf(2)); return e }()}, "drawn again"},
	}
	for _, tc := range tests {
		a := domain.NewDrawAudit()
		for i, ev := range tc.events {
			a.Apply(domain.Envelope{ID: fmt.Sprintf("%s/%d", ev.AggregateID(), i)}, ev)
		}
		got := strings.Join(a.Violations(), "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: violations %q, want %q", tc.name, got, tc.want)
		}
	}
}
