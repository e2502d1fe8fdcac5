package domain

import (
	"fmt"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"
)

// SaleState is a sale as the log tells it. Every counter is a sum, so the fold
// gives the same answer whatever the interleaving of partitions.
type SaleState struct {
	SaleCreated
	Known       bool  // a SaleCreated was seen
	ReservedQty int64 // units ever reserved
	PaidQty     int64
	ExpiredQty  int64
	ReleasedQty int64 // units released by expiry, to the pool or to regular inventory
	PoolQty     int64 // units released back into the sale's pool
	Ended       bool
	EndReason   string
	Unsold      int64 // the pool returned to regular inventory at the end
	Orders      int64
	PaidOrders  int64
	Buyers      map[string]int64 // user → units held in orders that did not expire
	PaidCents   int64
	CreatedAt   time.Time // when SaleCreated occurred
	EndedAt     time.Time // when SaleEnded occurred

	// A sharded sale's shards (docs/sharding.md, domain/shard.go): each
	// shard's counters, the moves between them and SaleEnded's unsold units
	// per shard. Empty for an unsharded sale.
	ByShard      map[int]*ShardState
	Moves        int64
	ShardsUnsold []int64
}

// Remaining is the sale's purchasable pool.
func (s *SaleState) Remaining() int64 {
	return s.Stock - s.ReservedQty + s.PoolQty - s.Unsold
}

// Outstanding is the units reserved and not yet paid or expired.
func (s *SaleState) Outstanding() int64 { return s.ReservedQty - s.PaidQty - s.ExpiredQty }

// Released is everything given back: expired units plus the unsold pool at the end.
func (s *SaleState) Released() int64 { return s.ReleasedQty + s.Unsold }

// HistoryEntry is one event in the life of an order.
type HistoryEntry struct {
	Type string    `json:"type"`
	At   time.Time `json:"at"`
}

// OrderState is an order as the log tells it.
type OrderState struct {
	OrderID     string
	SaleID      string
	UserID      string
	Quantity    int64
	PriceCents  int64
	AmountCents int64
	PayBy       time.Time
	Status      string // "" until OrderPlaced is seen
	PaymentRef  string
	PlacedAt    time.Time
	PaidAt      time.Time
	ExpiredAt   time.Time
	Reserved    bool // its StockReserved was seen
	Released    bool // its StockReleased was seen
	History     []HistoryEntry
	terminals   int

	// IdempotencyKey is the key the order was purchased with ("" for none or
	// for an OrderPlaced v1, which did not record it).
	IdempotencyKey string
}

// Fold folds the log into sales and orders and notes every broken invariant.
// Apply is idempotent: an event id seen before is skipped (delivery is
// at-least-once), but a different body under a known id is a violation.
//
// Sales and Orders hold what is in memory: every sale and order of a fold
// that never archived (all of the log), or only the open ones of a fold that
// did (ArchiveClosed, fold_archive.go); Archived then holds the closed sales'
// summaries, and the caller keeps their SaleArchive.
type Fold struct {
	Sales      map[string]*SaleState
	Orders     map[string]*OrderState
	Archived   map[string]*ArchivedSale
	Events     int64 // distinct events applied
	Duplicates int64
	// seen holds a hash of each event's payload by id, and the event's sale
	// (so a closed sale's ids leave memory with it): a long log would
	// otherwise keep a copy of every payload alive. The hash is stable
	// across processes (xxhash), since a snapshot keeps it.
	seen       map[string]seenEvent
	violations []string
	// touched are the sales with events since the last ArchiveClosed.
	touched map[string]struct{}
}

type seenEvent struct {
	sum  uint64
	sale string
}

// NewFold returns an empty fold.
func NewFold() *Fold {
	return &Fold{Sales: map[string]*SaleState{}, Orders: map[string]*OrderState{}, Archived: map[string]*ArchivedSale{},
		seen: map[string]seenEvent{}, touched: map[string]struct{}{}}
}

func (f *Fold) violate(format string, args ...any) {
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
}

func (f *Fold) sale(id string) *SaleState {
	s, ok := f.Sales[id]
	if !ok {
		s = &SaleState{Buyers: map[string]int64{}}
		s.SaleID = id
		f.Sales[id] = s
	}
	return s
}

func (f *Fold) order(id string) *OrderState {
	o, ok := f.Orders[id]
	if !ok {
		o = &OrderState{OrderID: id}
		f.Orders[id] = o
	}
	return o
}

// Apply folds one decoded event. It returns false for a duplicate.
func (f *Fold) Apply(env Envelope, ev Event) bool {
	sum := xxhash.Sum64(env.Payload)
	if prev, ok := f.seen[env.ID]; ok {
		f.Duplicates++
		if prev.sum != sum {
			f.violate("event %s appears twice with different payloads", env.ID)
		}
		return false
	}
	sale := SaleOf(ev)
	f.seen[env.ID] = seenEvent{sum: sum, sale: sale}
	f.touched[sale] = struct{}{}
	f.Events++
	at := env.OccurredAt
	switch e := ev.(type) {
	case SaleCreated:
		s := f.sale(e.SaleID)
		s.SaleCreated, s.Known, s.CreatedAt = e, true, at
	case StockReserved:
		s := f.sale(e.SaleID)
		s.ReservedQty += e.Quantity
		o := f.order(e.OrderID)
		o.Reserved = true
		o.History = append(o.History, HistoryEntry{Type: env.Type, At: at})
	case OrderPlaced:
		s := f.sale(e.SaleID)
		s.Orders++
		s.Buyers[e.UserID] += e.Quantity
		o := f.order(e.OrderID)
		o.SaleID, o.UserID, o.Quantity = e.SaleID, e.UserID, e.Quantity
		o.PriceCents, o.AmountCents, o.PayBy, o.PlacedAt = e.PriceCents, e.AmountCents, e.PayBy, at
		o.IdempotencyKey = e.IdempotencyKey
		if o.Status == "" {
			o.Status = StatusReserved
		}
		o.History = append(o.History, HistoryEntry{Type: env.Type, At: at})
	case OrderPaid:
		s := f.sale(e.SaleID)
		s.PaidQty += e.Quantity
		s.PaidOrders++
		s.PaidCents += e.AmountCents
		o := f.order(e.OrderID)
		o.terminals++
		o.Status, o.PaymentRef, o.PaidAt = StatusPaid, e.PaymentRef, at
		o.History = append(o.History, HistoryEntry{Type: env.Type, At: at})
	case OrderExpired:
		s := f.sale(e.SaleID)
		s.ExpiredQty += e.Quantity
		s.Buyers[e.UserID] -= e.Quantity
		o := f.order(e.OrderID)
		o.terminals++
		o.Status, o.ExpiredAt = StatusExpired, at
		o.History = append(o.History, HistoryEntry{Type: env.Type, At: at})
	case StockReleased:
		s := f.sale(e.SaleID)
		s.ReleasedQty += e.Quantity
		if e.ToPool {
			s.PoolQty += e.Quantity
		}
		o := f.order(e.OrderID)
		o.Released = true
		o.History = append(o.History, HistoryEntry{Type: env.Type, At: at})
	case SaleEnded:
		s := f.sale(e.SaleID)
		if s.Ended {
			f.violate("sale %s ended twice", e.SaleID)
		}
		s.Ended, s.Unsold, s.EndReason, s.EndedAt = true, e.Unsold, e.Reason, at
	case StockMoved:
		// Moves change no sale-level counter; applyShard places them.
	case DrawHeld:
		// A draw changes no counter; DrawAudit (draw.go) draws it again and
		// checks the orders against it.
	default:
		f.violate("event %s: unhandled type %T", env.ID, ev)
	}
	f.applyShard(ev)
	return true
}

// Violations checks the invariants over everything folded so far and returns
// one readable line per violation, sorted; none means the log is sound. A
// closed sale's violations were found when it was archived.
func (f *Fold) Violations() []string {
	out := append([]string(nil), f.violations...)
	for id, s := range f.Sales {
		out = append(out, saleViolations(id, s)...)
	}
	for _, o := range f.Orders {
		out = append(out, f.orderViolations(o)...)
	}
	for _, a := range f.Archived {
		out = append(out, a.Violations...)
	}
	sort.Strings(out)
	return out
}

// saleViolations checks one sale's counters.
func saleViolations(id string, s *SaleState) []string {
	if !s.Known {
		return []string{fmt.Sprintf("sale %s: events without a SaleCreated", id)}
	}
	var out []string
	if sold := s.PaidQty + s.Outstanding(); sold > s.Stock {
		out = append(out, fmt.Sprintf("sale %s: sold %d (paid %d + reserved %d) > stock %d", id, sold, s.PaidQty, s.Outstanding(), s.Stock))
	}
	if s.Remaining() < 0 {
		out = append(out, fmt.Sprintf("sale %s: remaining pool %d < 0", id, s.Remaining()))
	}
	for user, units := range s.Buyers {
		if units > s.PerUserLimit {
			out = append(out, fmt.Sprintf("sale %s: user %s holds %d units, limit %d", id, user, units, s.PerUserLimit))
		}
	}
	return append(out, s.shardViolations(id)...)
}

// orderViolations checks one order's life and that its sale is known.
func (f *Fold) orderViolations(o *OrderState) []string {
	var out []string
	id := o.OrderID
	switch {
	case o.Status == "":
		out = append(out, fmt.Sprintf("order %s: events for an order never placed", id))
	case o.terminals > 1:
		out = append(out, fmt.Sprintf("order %s: %d terminal states", id, o.terminals))
	case !o.Reserved:
		out = append(out, fmt.Sprintf("order %s: placed without a StockReserved", id))
	case o.Status == StatusExpired && !o.Released:
		out = append(out, fmt.Sprintf("order %s: expired but its stock was never released", id))
	case o.Released && o.Status != StatusExpired:
		out = append(out, fmt.Sprintf("order %s: stock released but the order is %s", id, o.Status))
	}
	if s, ok := f.SaleState(o.SaleID); o.SaleID != "" && (!ok || !s.Known) {
		out = append(out, fmt.Sprintf("order %s: unknown sale %s", id, o.SaleID))
	} else if v := orderShardViolation(o, s); ok && v != "" {
		out = append(out, v)
	}
	return out
}
