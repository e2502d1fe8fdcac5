package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The fair draw of a staged release (README, "Protections"). Seed 000 hands
// each released slice to a random pick of those asking; first come, first
// served hands it to whoever polls fastest, the bots. A sale with
// ReleaseMode "draw" collects the purchase attempts made during a slice's
// window (entrants, at most DrawEntrantCap of them) and, when the window
// closes, draws the slice's units among them with a random seed. The seed,
// the entrants and the winners are recorded in the log (DrawHeld), so the
// audit draws again and checks that the same users won; the winners' orders
// are then placed through the gate's ordinary purchase, each with the
// idempotency key DrawKey(slice).

// ReleaseModeDraw is Protections.ReleaseMode of a sale whose slices are drawn.
const ReleaseModeDraw = "draw"

// Bounds of a slice's entrants: the draw and its record stay small however
// large the crowd; the attempts past the cap are told the slice is full and
// may enter the next one.
const (
	MinDrawEntrants     = 1000
	DrawEntrantsPerUnit = 100
	MaxDrawEntrants     = 10_000
)

// DrawEntrantCap is how many entrants a slice of step units takes.
func DrawEntrantCap(step int64) int64 {
	return min(MaxDrawEntrants, max(MinDrawEntrants, DrawEntrantsPerUnit*step))
}

// TypeDrawHeld is the event type of DrawHeld (see events.go).
const TypeDrawHeld = "DrawHeld"

// DrawHeld records the draw of one slice of a draw-mode sale; aggregate: the
// draw (DrawID). Everything the draw used is here, so anyone can draw again.
type DrawHeld struct {
	SaleID string `json:"sale_id"`
	// DrawID is DrawIDOf(SaleID, Slice).
	DrawID string `json:"draw_id"`
	// Slice numbers the release intervals from 0 (the one at the start).
	Slice int64 `json:"slice"`
	// ClosedAt is the end of the slice's window: entries until then count.
	ClosedAt time.Time `json:"closed_at"`
	// Seed is the draw's randomness, 32 bytes as hex, chosen when the
	// window closed, so no entrant could know it while entering.
	Seed string `json:"seed"`
	// Units is how many units the slice offered: released by the end of the
	// window and not held by an order at the draw.
	Units int64 `json:"units"`
	// Entrants are the users who entered, sorted, each once.
	Entrants []string `json:"entrants"`
	// Winners are Draw(Seed, Entrants, Units), in the order drawn.
	Winners []string `json:"winners"`
}

// EventType implements Event.
func (DrawHeld) EventType() string { return TypeDrawHeld }

// AggregateID implements Event: the draw, so each slice's record has its
// own event id.
func (e DrawHeld) AggregateID() string { return e.DrawID }

// DrawIDOf names the draw of a slice of a sale.
func DrawIDOf(sale string, slice int64) string { return sale + "-draw-" + strconv.FormatInt(slice, 10) }

// DrawKey is the idempotency key of a winner's order in a slice: a retry of
// the placement answers with the same order, and the audit finds the draw
// an order came from.
func DrawKey(slice int64) string { return "draw-" + strconv.FormatInt(slice, 10) }

// DrawSlice is the slice a drawn order's idempotency key names; false for
// a key DrawKey did not make.
func DrawSlice(key string) (int64, bool) {
	s, ok := strings.CutPrefix(key, "draw-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0 && strconv.FormatInt(n, 10) == s
}

// Draw picks min(units, distinct entrants) winners among entrants with
// seed: the entrants are sorted and deduplicated, then shuffled by a
// Fisher–Yates whose every index comes from SHA-256 of the seed (pick), and
// the first ones win. The same seed and entrants give the same winners on
// any machine, in any version: nothing here depends on a library's random
// number generator.
func Draw(seed []byte, entrants []string, units int64) []string {
	pool := slices.Clone(entrants)
	slices.Sort(pool)
	pool = slices.Compact(pool)
	n := int(min(max(units, 0), int64(len(pool))))
	for i := range n {
		j := i + pick(seed, i, len(pool)-i)
		pool[i], pool[j] = pool[j], pool[i]
	}
	return pool[:n:n]
}

// pick is a uniform number in [0, m) for position i: the first 8 bytes of
// SHA-256(seed, i, try) as a big-endian number, rejected (next try) when it
// falls in the incomplete last block of m, which would favour small values.
func pick(seed []byte, i, m int) int {
	limit := math.MaxUint64 - math.MaxUint64%uint64(m) // a multiple of m
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(i))
	for try := uint64(0); ; try++ {
		binary.BigEndian.PutUint64(buf[8:], try)
		h := sha256.New()
		h.Write(seed)
		h.Write(buf[:])
		v := binary.BigEndian.Uint64(h.Sum(nil))
		if v < limit {
			return int(v % uint64(m))
		}
	}
}

// CheckDraw draws e again and says what is wrong with the record, nil when
// nothing: a seed that is not 32 bytes of hex, entrants unsorted, repeated
// or past the cap, or winners other than the draw's.
func CheckDraw(e DrawHeld) []string {
	var out []string
	seed, err := hex.DecodeString(e.Seed)
	if err != nil || len(seed) != 32 {
		return []string{fmt.Sprintf("draw %s: seed %q is not 32 bytes of hex", e.DrawID, e.Seed)}
	}
	if e.DrawID != DrawIDOf(e.SaleID, e.Slice) {
		out = append(out, fmt.Sprintf("draw %s: id is not that of sale %s slice %d", e.DrawID, e.SaleID, e.Slice))
	}
	if !slices.IsSorted(e.Entrants) || len(slices.Compact(slices.Clone(e.Entrants))) != len(e.Entrants) {
		out = append(out, fmt.Sprintf("draw %s: entrants are not sorted and distinct", e.DrawID))
	}
	if len(e.Entrants) > MaxDrawEntrants {
		out = append(out, fmt.Sprintf("draw %s: %d entrants, more than the cap %d", e.DrawID, len(e.Entrants), MaxDrawEntrants))
	}
	if e.Units < 0 {
		out = append(out, fmt.Sprintf("draw %s: %d units", e.DrawID, e.Units))
	}
	if again := Draw(seed, e.Entrants, e.Units); !slices.Equal(again, e.Winners) {
		out = append(out, fmt.Sprintf("draw %s: recorded winners %v, drawn again %v", e.DrawID, e.Winners, again))
	}
	return out
}

// DrawAudit checks the draws of a log: every DrawHeld drawn again
// (CheckDraw), each slice drawn once, draws only in draw-mode sales, and
// every order of a draw-mode sale placed for a winner of the slice its
// idempotency key names, one per winner and slice. It keeps only the draws
// and the orders of draw-mode sales. Events may come in any order (an order
// and its draw have different keys), so the orders are judged at the end.
type DrawAudit struct {
	drawMode map[string]bool                  // sale → in draw mode (SaleCreated seen)
	draws    map[string]map[int64]DrawHeld    // sale → slice → draw
	orders   map[string]map[string]drawnOrder // sale → order id → order
	seen     map[string]bool                  // event ids, for redeliveries
	problems []string
}

type drawnOrder struct{ user, key string }

// NewDrawAudit returns an empty DrawAudit.
func NewDrawAudit() *DrawAudit {
	return &DrawAudit{drawMode: map[string]bool{}, draws: map[string]map[int64]DrawHeld{},
		orders: map[string]map[string]drawnOrder{}, seen: map[string]bool{}}
}

// Apply takes one event of the log; delivered again, it changes nothing.
func (a *DrawAudit) Apply(env Envelope, ev Event) {
	switch e := ev.(type) {
	case SaleCreated:
		a.drawMode[e.SaleID] = e.ReleaseMode == ReleaseModeDraw
	case OrderPlaced:
		if a.orders[e.SaleID] == nil {
			a.orders[e.SaleID] = map[string]drawnOrder{}
		}
		a.orders[e.SaleID][e.OrderID] = drawnOrder{e.UserID, e.IdempotencyKey}
	case DrawHeld:
		if a.seen[env.ID] {
			return
		}
		a.seen[env.ID] = true
		a.problems = append(a.problems, CheckDraw(e)...)
		bySlice := a.draws[e.SaleID]
		if bySlice == nil {
			bySlice = map[int64]DrawHeld{}
			a.draws[e.SaleID] = bySlice
		}
		if _, ok := bySlice[e.Slice]; ok {
			a.problems = append(a.problems, fmt.Sprintf("sale %s: slice %d drawn twice", e.SaleID, e.Slice))
			return
		}
		bySlice[e.Slice] = e
	}
}

// Draws is how many draws were applied.
func (a *DrawAudit) Draws() int {
	n := 0
	for _, bySlice := range a.draws {
		n += len(bySlice)
	}
	return n
}

// Violations returns one line per problem, sorted; none means every draw
// holds and every order of a draw-mode sale went to a winner.
func (a *DrawAudit) Violations() []string {
	out := slices.Clone(a.problems)
	for sale := range a.draws {
		if mode, known := a.drawMode[sale]; known && !mode {
			out = append(out, fmt.Sprintf("sale %s: draws in a sale that is not in draw mode", sale))
		}
	}
	for sale, orders := range a.orders {
		if !a.drawMode[sale] {
			continue
		}
		out = append(out, a.orderViolations(sale, orders)...)
	}
	slices.Sort(out)
	return out
}

func (a *DrawAudit) orderViolations(sale string, orders map[string]drawnOrder) []string {
	var out []string
	type won struct {
		slice int64
		user  string
	}
	placed := map[won]int{}
	for oid, o := range orders {
		slice, ok := DrawSlice(o.key)
		if !ok {
			out = append(out, fmt.Sprintf("order %s: placed in draw-mode sale %s without a draw (key %q)", oid, sale, o.key))
			continue
		}
		d, ok := a.draws[sale][slice]
		if !ok {
			out = append(out, fmt.Sprintf("order %s: placed for slice %d of sale %s, which was never drawn", oid, slice, sale))
			continue
		}
		if !slices.Contains(d.Winners, o.user) {
			out = append(out, fmt.Sprintf("order %s: user %s did not win slice %d of sale %s", oid, o.user, slice, sale))
		}
		if placed[won{slice, o.user}]++; placed[won{slice, o.user}] == 2 {
			out = append(out, fmt.Sprintf("sale %s: user %s has more than one order for slice %d", sale, o.user, slice))
		}
	}
	return out
}
