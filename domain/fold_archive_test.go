package domain_test

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/domain/foldgen"
)

// archivingFold folds as the snapshot package does, without its files:
// closed sales are archived every few events into a map (through JSON, as on
// disk), handed back when an event of theirs comes, and at cut points the
// whole state goes through JSON as a snapshot would.
type archivingFold struct {
	f                 *domain.Fold
	archives          map[string][]byte
	archived, reopens int
}

func (a *archivingFold) apply(t *testing.T, b []byte) {
	t.Helper()
	env, ev, err := domain.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	sale, other := domain.SalesOf(ev)
	for _, id := range []string{sale, other} {
		if _, ok := a.f.Archived[id]; ok {
			var sa domain.SaleArchive
			if err := json.Unmarshal(a.archives[id], &sa); err != nil {
				t.Fatal(err)
			}
			delete(a.archives, id)
			a.f.Reopen(&sa)
			a.reopens++
		}
	}
	a.f.Apply(env, ev)
}

// archive archives what closed, with the whole log read (EndOfLog) or up to
// a watermark.
func (a *archivingFold) archive(t *testing.T, watermark ...time.Time) {
	t.Helper()
	w := domain.EndOfLog
	if len(watermark) > 0 {
		w = watermark[0]
	}
	for _, sa := range a.f.ArchiveClosed(w) {
		b, err := json.Marshal(sa)
		if err != nil {
			t.Fatal(err)
		}
		a.archives[sa.Sale.SaleID] = b
		a.archived++
	}
}

// snapshot sends the fold's state through JSON and back.
func (a *archivingFold) snapshot(t *testing.T) {
	t.Helper()
	b, err := json.Marshal(a.f.State())
	if err != nil {
		t.Fatal(err)
	}
	var st domain.FoldState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	a.f = domain.FoldFromState(st)
}

// materialize reopens every archive, so the fold holds everything again.
func (a *archivingFold) materialize(t *testing.T) *domain.Fold {
	t.Helper()
	for _, id := range a.f.ArchivedIDs() {
		var sa domain.SaleArchive
		if err := json.Unmarshal(a.archives[id], &sa); err != nil {
			t.Fatal(err)
		}
		a.f.Reopen(&sa)
	}
	return a.f
}

// dump is a fold as comparable text.
func dump(t *testing.T, f *domain.Fold) string {
	t.Helper()
	s, err := foldgen.Canonical(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestArchivingFoldEqualsFullFold: over random logs with redeliveries (some
// after their sale closed) and broken orders, a fold that archives closed
// sales and goes through snapshots at random points ends in the same state,
// with the same violations, as a fold of the whole log in memory.
func TestArchivingFoldEqualsFullFold(t *testing.T) {
	t.Parallel()
	var archived, reopens, violations int
	for seed := range uint64(60) {
		cfg := foldgen.Config{Sales: 1 + int(seed%12), MaxOrders: 1 + int(seed%7)*3, Dups: 0.1, LateDups: 0.3, Broken: 0.05}
		envs, err := foldgen.Log(seed, cfg)
		if err != nil {
			t.Fatal(err)
		}
		full := domain.NewFold()
		for _, b := range envs {
			env, ev, err := domain.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			full.Apply(env, ev)
		}
		rng := rand.New(rand.NewPCG(seed, 7))
		a := &archivingFold{f: domain.NewFold(), archives: map[string][]byte{}}
		every := 1 + rng.IntN(20)
		for i, b := range envs {
			a.apply(t, b)
			if i%every == 0 {
				// A watermark anywhere from long ago to the end.
				a.archive(t, time.Date(2025, 11, 11+rng.IntN(2*cfg.Sales+1), 0, 0, 0, 0, time.UTC))
			}
			if rng.IntN(30) == 0 {
				a.archive(t)
				a.snapshot(t)
			}
		}
		a.archive(t)
		if got, want := a.f.OrderCount(), int64(len(full.Orders)); got != want {
			t.Errorf("seed %d: %d orders counted, full fold has %d", seed, got, want)
		}
		if got, want := a.f.SaleCount(), len(full.Sales); got != want {
			t.Errorf("seed %d: %d sales counted, full fold has %d", seed, got, want)
		}
		if got, want := a.f.Violations(), full.Violations(); !slices.Equal(got, want) {
			t.Errorf("seed %d: violations\n got %q\nwant %q", seed, got, want)
		}
		archived, reopens, violations = archived+a.archived, reopens+a.reopens, violations+len(full.Violations())
		if got, want := dump(t, a.materialize(t)), dump(t, full); got != want {
			t.Fatalf("seed %d: archived fold differs from the full fold\n got %s\nwant %s", seed, got, want)
		}
	}
	// The logs must exercise what is tested: archives, late redeliveries
	// that reopen them, and violations.
	if archived < 100 || reopens < 10 || violations < 10 {
		t.Errorf("weak logs: %d archives, %d reopens, %d violations", archived, reopens, violations)
	}
	t.Logf("%d archives, %d reopens, %d violations", archived, reopens, violations)
}

// TestArchiveKeepsOnlyOpenSales: a log of closed sales leaves none of their
// orders or event ids in memory.
func TestArchiveKeepsOnlyOpenSales(t *testing.T) {
	t.Parallel()
	envs, err := foldgen.Log(3, foldgen.Config{Sales: 30, MaxOrders: 20})
	if err != nil {
		t.Fatal(err)
	}
	a := &archivingFold{f: domain.NewFold(), archives: map[string][]byte{}}
	for _, b := range envs {
		a.apply(t, b)
		a.archive(t)
	}
	if len(a.f.Archived) < 20 {
		t.Fatalf("only %d of 30 sales archived", len(a.f.Archived))
	}
	for _, o := range a.f.Orders {
		if _, archived := a.f.Archived[o.SaleID]; archived {
			t.Errorf("order %s of archived sale %s still in memory", o.OrderID, o.SaleID)
		}
	}
	st := a.f.State()
	for _, e := range st.Seen {
		if _, archived := a.f.Archived[e.Sale]; archived {
			t.Errorf("event %s of archived sale %s still in memory", e.ID, e.Sale)
		}
	}
	if open := len(a.f.Sales); open+len(a.f.Archived) != 30 || open > 10 {
		t.Errorf("%d sales open, %d archived", open, len(a.f.Archived))
	}
}
