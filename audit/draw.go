package audit

import (
	"context"
	"fmt"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
)

// checkDraws draws again every DrawHeld of the draw-mode sales the fold
// found and checks their orders against the draws (domain.DrawAudit). The
// fold does not keep draws or idempotency keys past a snapshot, so this is
// a read of the log of its own, made only when a draw-mode sale exists.
func (a *Auditor) checkDraws(ctx context.Context, fold *domain.Fold) (Check, error) {
	c := Check{Name: "draws"}
	sales := map[string]bool{}
	for id, s := range fold.Sales {
		if s.ReleaseMode == domain.ReleaseModeDraw {
			sales[id] = true
		}
	}
	for id, s := range fold.Archived {
		if s.Sale != nil && s.Sale.ReleaseMode == domain.ReleaseModeDraw {
			sales[id] = true
		}
	}
	if len(sales) == 0 {
		c.Skipped = "no sale in draw mode"
		return c, nil
	}
	draws := domain.NewDrawAudit()
	err := eventstore.ReadAll(ctx, a.cfg.Brokers, a.cfg.Topic, func(rec eventstore.Record) error {
		env, err := domain.DecodeEnvelope(rec.Value)
		if err != nil {
			return nil // the log check counts undecodable records
		}
		switch env.Type {
		case domain.TypeSaleCreated, domain.TypeOrderPlaced, domain.TypeDrawHeld:
		default:
			return nil
		}
		ev, err := domain.DecodePayload(&env)
		if err != nil {
			return nil
		}
		if sales[domain.RefsOf(ev).SaleID] {
			draws.Apply(env, ev)
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("audit draws: %w", err)
	}
	c.Violations = draws.Violations()
	if draws.Draws() == 0 && len(c.Violations) == 0 {
		c.Skipped = fmt.Sprintf("%d sale(s) in draw mode, no draw held yet", len(sales))
	}
	return c, nil
}
