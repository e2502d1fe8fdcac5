package readmodels

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
)

// The inventory-return feed (migrations/00006_daily_returns.sql): the units
// each sale hands back to everyday inventory, written by the daily
// projection with the daily-order mirror, pulled by the everyday system with
// a cursor (Returns). A unit goes back to everyday inventory in two ways:
// the sale's pool when it ends (SaleEnded.Unsold), and an order that expires
// after the end (StockReleased.ToPool false: the sale's pool is closed).

// Reasons of a return.
const (
	ReturnUnsold          = "unsold"
	ReturnExpiredAfterEnd = "expired_after_end"
)

// Return is one hand-back of units to everyday inventory.
type Return struct {
	// Position is the event's place in the log, "partition:offset".
	Position string `json:"position"`
	// EventID is the event that handed the units back: deduplicate by it.
	EventID string `json:"event_id"`
	SaleID  string `json:"sale_id"`
	// OrderID is the expired order (reason expired_after_end).
	OrderID    string    `json:"order_id,omitempty"`
	Reason     string    `json:"reason"`
	Quantity   int64     `json:"quantity"`
	OccurredAt time.Time `json:"occurred_at"`
}

// ReturnsPage is one pull of the feed.
type ReturnsPage struct {
	Returns []Return `json:"returns"`
	// Cursor asks for what comes after this page; pass it back as is.
	Cursor string `json:"cursor"`
	// More is true when the feed had more than the page held.
	More bool `json:"more"`
}

// MaxReturnsPage bounds one page.
const MaxReturnsPage = 1000

// ReturnsCursor is where a reader of the feed is: per log partition, the
// last offset it has read (a partition it has read nothing of is absent).
type ReturnsCursor map[int32]int64

// ParseReturnsCursor reads a cursor as String writes it: "" (the start) or
// "P:O,P:O…", partitions ascending.
func ParseReturnsCursor(s string) (ReturnsCursor, error) {
	c := ReturnsCursor{}
	if s == "" {
		return c, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		ps, os, ok := strings.Cut(part, ":")
		p, perr := strconv.ParseInt(ps, 10, 32)
		o, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
			return nil, domain.Invalid("cursor", "is not a cursor this feed returned")
		}
		if _, dup := c[int32(p)]; dup {
			return nil, domain.Invalid("cursor", "names partition %d twice", p)
		}
		c[int32(p)] = o
	}
	return c, nil
}

// String writes the cursor: partitions ascending, "" for the start.
func (c ReturnsCursor) String() string {
	parts := make([]string, 0, len(c))
	for _, p := range slices.Sorted(func(yield func(int32) bool) {
		for p := range c {
			if !yield(p) {
				return
			}
		}
	}) {
		parts = append(parts, strconv.FormatInt(int64(p), 10)+":"+strconv.FormatInt(c[p], 10))
	}
	return strings.Join(parts, ",")
}

// returnsSQL are the statements over the returns table t.
func returnsSQL(t string) (insert, page, bySale string) {
	insert = `INSERT INTO ` + t + ` (log_partition, log_offset, event_id, sale_id, order_id, reason, quantity, occurred_at)
		SELECT * FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::timestamptz[])
		ON CONFLICT DO NOTHING`
	page = `SELECT r.log_partition, r.log_offset, r.event_id, r.sale_id, r.order_id, r.reason, r.quantity, r.occurred_at
		FROM ` + t + ` r LEFT JOIN unnest($1::int[], $2::bigint[]) AS c(part, off) ON c.part = r.log_partition
		WHERE r.log_offset > coalesce(c.off, -1)
		ORDER BY r.log_partition, r.log_offset LIMIT $3`
	bySale = `SELECT sale_id, sum(quantity) FROM ` + t + ` GROUP BY sale_id`
	return insert, page, bySale
}

// queueReturns adds to b the insert of the batch's returns, if it has any.
// A second copy of an event (same event id) or of a position changes
// nothing, so redeliveries are harmless.
func (p *Daily) queueReturns(b *pgx.Batch, batch []projections.Event) {
	var (
		part                    []int32
		off, qty                []int64
		id, sale, order, reason []string
		at                      []time.Time
	)
	for _, e := range batch {
		var s, o, why string
		var q int64
		switch ev := e.Event.(type) {
		case domain.SaleEnded:
			s, q, why = ev.SaleID, ev.Unsold, ReturnUnsold
		case domain.StockReleased:
			if ev.ToPool {
				continue // back into the sale's own pool, not to everyday stock
			}
			s, o, q, why = ev.SaleID, ev.OrderID, ev.Quantity, ReturnExpiredAfterEnd
		default:
			continue
		}
		if q <= 0 {
			continue // nothing handed back
		}
		part, off, id = append(part, e.Partition), append(off, e.Offset), append(id, e.Envelope.ID)
		sale, order, reason, qty = append(sale, s), append(order, o), append(reason, why), append(qty, q)
		at = append(at, pgTime(e.Envelope.OccurredAt))
	}
	if len(id) > 0 {
		b.Queue(p.sql.returns, part, off, id, sale, order, reason, qty, at)
	}
}

// Returns reads the feed after cursor, at most limit returns (1 to
// MaxReturnsPage), in log order per partition.
func (p *Daily) Returns(ctx context.Context, cursor ReturnsCursor, limit int) (ReturnsPage, error) {
	limit = min(max(limit, 1), MaxReturnsPage)
	parts, offs := make([]int32, 0, len(cursor)), make([]int64, 0, len(cursor))
	for p, o := range cursor {
		parts, offs = append(parts, p), append(offs, o)
	}
	rows, err := p.pool.Query(ctx, p.sql.returnsPage, parts, offs, limit+1)
	if err != nil {
		return ReturnsPage{}, fmt.Errorf("inventory returns: %w", err)
	}
	defer rows.Close()
	page := ReturnsPage{Returns: []Return{}}
	next := ReturnsCursor{}
	for p, o := range cursor {
		next[p] = o
	}
	for rows.Next() {
		if len(page.Returns) == limit {
			page.More = true
			break
		}
		var r Return
		var part int32
		var off int64
		if err := rows.Scan(&part, &off, &r.EventID, &r.SaleID, &r.OrderID, &r.Reason, &r.Quantity, &r.OccurredAt); err != nil {
			return ReturnsPage{}, fmt.Errorf("inventory returns: %w", err)
		}
		r.Position = strconv.FormatInt(int64(part), 10) + ":" + strconv.FormatInt(off, 10)
		r.OccurredAt = r.OccurredAt.UTC()
		next[part] = off
		page.Returns = append(page.Returns, r)
	}
	if err := rows.Err(); err != nil {
		return ReturnsPage{}, fmt.Errorf("inventory returns: %w", err)
	}
	page.Cursor = next.String()
	return page, nil
}

// ReturnedBySale is the units handed back per sale, for the audit.
func (p *Daily) ReturnedBySale(ctx context.Context) (map[string]int64, error) {
	rows, err := p.pool.Query(ctx, p.sql.returnsBySale)
	if err != nil {
		return nil, fmt.Errorf("inventory returns by sale: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (struct {
		sale string
		qty  int64
	}, error) {
		var v struct {
			sale string
			qty  int64
		}
		err := row.Scan(&v.sale, &v.qty)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("inventory returns by sale: %w", err)
	}
	m := make(map[string]int64, len(out))
	for _, v := range out {
		m[v.sale] = v.qty
	}
	return m, nil
}
