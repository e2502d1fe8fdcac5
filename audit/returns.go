package audit

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
)

// ReturnsModel checks the inventory-return feed (readmodels/returns.go,
// written by the daily projection) against the log: per sale, the units
// handed back to everyday inventory are what the fold says were — the
// unsold pool at the end plus the units of orders that expired after it
// (released, not into the sale's pool).
type ReturnsModel struct {
	pool  *pgxpool.Pool
	daily *readmodels.Daily
}

// NewReturnsModel checks the feed in the daily projection's database pool.
func NewReturnsModel(pool *pgxpool.Pool) (*ReturnsModel, error) {
	d, err := readmodels.NewDaily(readmodels.DailyConfig{}, pool)
	if err != nil {
		return nil, fmt.Errorf("returns model: %w", err)
	}
	return &ReturnsModel{pool: pool, daily: d}, nil
}

// Name returns readmodels.NameDaily: the feed is the daily projection's.
func (m *ReturnsModel) Name() string { return readmodels.NameDaily }

// Positions returns the daily projection's checkpoints.
func (m *ReturnsModel) Positions(ctx context.Context, topic string) (map[int32]int64, error) {
	return checkpoints(ctx, m.pool, projections.DefaultCheckpointTable, readmodels.NameDaily, topic)
}

// Compare calls violate for every sale whose returned units differ from
// the fold's, open and closed sales alike.
func (m *ReturnsModel) Compare(ctx context.Context, log LogState, violate func(string)) error {
	got, err := m.daily.ReturnedBySale(ctx)
	if err != nil {
		return err
	}
	want := map[string]int64{}
	add := func(id string, s *domain.SaleState) {
		if n := s.Unsold + s.ReleasedQty - s.PoolQty; n != 0 {
			want[id] = n
		}
	}
	for id, s := range log.Fold.Sales {
		add(id, s)
	}
	for id, a := range log.Fold.Archived {
		if a.Sale != nil {
			add(id, a.Sale)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if got[id] != want[id] {
			violate(fmt.Sprintf("inventory returns of sale %s: %d unit(s) in the feed, the log hands back %d (unsold pool + expired after the end)",
				id, got[id], want[id]))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			violate(fmt.Sprintf("inventory returns of sale %s: %d unit(s) in the feed, the log hands back none", id, got[id]))
		}
	}
	return nil
}
