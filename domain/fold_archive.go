package domain

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
)

// FoldVersion names the fold's rules and the layout of FoldState and
// SaleArchive. A snapshot records it, and one written by another version is
// not used: bump it whenever Apply, the invariants or those types change
// what they mean.
const FoldVersion = 1

// A long log is mostly closed sales: ended, every order paid or expired and
// released. ArchiveClosed takes such a sale out of memory whole (a
// SaleArchive the caller stores) and keeps a summary (ArchivedSale) with what
// the audit and the restore still need without its orders: the sale's
// counters, its violations, and digests of its orders to compare with the
// gate and the read model. So a fold's memory is bounded by its open sales,
// not by the history. An event of an archived sale that arrives later (a
// redelivery, or a bug) is folded exactly as in a fold that never archived:
// the caller hands the archive back (Reopen) before applying it.

// ArchivedSale is what stays in memory of a closed sale.
type ArchivedSale struct {
	// Sale is its configuration and counters; Buyers is left out (the
	// per-user limit was checked when it was archived).
	Sale *SaleState `json:"sale"`
	// Orders counts its orders (placed or not), Events its distinct events.
	Orders int64 `json:"orders"`
	Events int64 `json:"events"`
	// GateOrders and RowOrders are digests of its placed orders as the gate
	// (GateDigest) and the read model (RowDigest) hold them.
	GateOrders Digest `json:"gate_orders"`
	RowOrders  Digest `json:"row_orders"`
	// Violations are the sale's and its orders' (Violations).
	Violations []string `json:"violations,omitempty"`
}

// SaleArchive is a closed sale whole: what Reopen needs to make the fold as if
// it had never been archived, and what a restore writes back to the gate.
type SaleArchive struct {
	Sale   *SaleState  `json:"sale"`
	Orders []OrderSnap `json:"orders"`
	Seen   []SeenSnap  `json:"seen"`
}

// OrderSnap is an OrderState as a snapshot stores it.
type OrderSnap struct {
	OrderState
	Terminals int `json:"terminals"`
}

// SeenSnap is one event id the fold has seen, with its payload's hash and its sale.
type SeenSnap struct {
	ID   string `json:"id"`
	Sum  uint64 `json:"sum"`
	Sale string `json:"sale"`
}

// FoldState is a fold's memory as a snapshot stores it: open sales and orders
// in full, closed ones as summaries.
type FoldState struct {
	Events     int64           `json:"events"`
	Duplicates int64           `json:"duplicates"`
	Violations []string        `json:"violations,omitempty"`
	Sales      []*SaleState    `json:"sales"`
	Orders     []OrderSnap     `json:"orders"`
	Seen       []SeenSnap      `json:"seen"`
	Archived   []*ArchivedSale `json:"archived"`
}

// Digest is an order-independent fingerprint of a set of records: their
// number and the sum of a hash of each. Two sets with the same digest are the
// same set but for a 2^-64 chance.
type Digest struct {
	N   int64  `json:"n"`
	Sum uint64 `json:"sum"`
}

// Add adds one record made of fields.
func (d *Digest) Add(fields ...string) {
	h := xxhash.New()
	for _, f := range fields {
		_, _ = h.WriteString(f)
		_, _ = h.Write([]byte{0})
	}
	d.N++
	d.Sum += h.Sum64()
}

// GateDigest adds an order as the audit compares it with the gate.
func (d *Digest) GateDigest(orderID, status, userID string, quantity int64) {
	d.Add(orderID, status, userID, strconv.FormatInt(quantity, 10))
}

// RowDigest adds an order as the audit compares it with the read model's row.
func (d *Digest) RowDigest(orderID, saleID, userID string, quantity int64, status string, amountCents int64, paymentRef string) {
	d.Add(orderID, saleID, userID, strconv.FormatInt(quantity, 10), status, strconv.FormatInt(amountCents, 10), paymentRef)
}

// SaleOf is the sale an event belongs to.
func SaleOf(ev Event) string { return RefsOf(ev).SaleID }

// SalesOf are the sales whose archives must be back in memory before ev is
// applied: its sale, and the sale its order id names ("" when that is the
// same; they differ only in a broken log).
func SalesOf(ev Event) (sale, orderSale string) {
	r := RefsOf(ev)
	if s, ok := SaleOfOrder(r.OrderID); ok && s != r.SaleID {
		return r.SaleID, s
	}
	return r.SaleID, ""
}

// orderSale is the sale an order is archived with: the one it was placed in,
// or the one its id names if it never was.
func orderSale(o *OrderState) string {
	if o.SaleID != "" {
		return o.SaleID
	}
	s, _ := SaleOfOrder(o.OrderID)
	return s
}

// SaleState returns a sale in memory or the summary of an archived one.
func (f *Fold) SaleState(id string) (*SaleState, bool) {
	if s, ok := f.Sales[id]; ok {
		return s, true
	}
	if a, ok := f.Archived[id]; ok {
		return a.Sale, true
	}
	return nil, false
}

// SaleCount and OrderCount count sales and orders, archived or not.
func (f *Fold) SaleCount() int { return len(f.Sales) + len(f.Archived) }

// OrderCount counts orders, archived or not.
func (f *Fold) OrderCount() int64 {
	n := int64(len(f.Orders))
	for _, a := range f.Archived {
		n += a.Orders
	}
	return n
}

// settled says whether a sale can be closed by its counters: known, ended,
// nothing reserved and unpaid, every expired unit released.
func (s *SaleState) settled() bool {
	return s.Known && s.Ended && s.Outstanding() == 0 && s.ReleasedQty == s.ExpiredQty
}

// QuietAfter is when the log can be expected to hold no more events of a
// sale that ended: its end, its time to pay and an hour of slack for the
// sweeper and the relay (the slack `events --sale` allows too).
func (s *SaleState) QuietAfter() time.Time {
	return s.EndedAt.Add(s.PayWithin() + time.Hour)
}

// EndOfLog is the watermark of a fold that read the whole log.
var EndOfLog = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// ArchiveClosed takes closed sales out of memory and returns them, sorted by
// sale id; each leaves an ArchivedSale in Archived. A sale is closed when it
// is settled, none of its orders is still reserved or expired without its
// release, and the log has moved past QuietAfter: watermark is the time
// every part of the log still being read has reached (a fold reads the
// partitions side by side, not in time order, so a sale's counters can look
// settled while a partition behind still holds some of its orders;
// archiving it then would only mean reopening it). Only sales with events
// since they were last looked at are considered.
func (f *Fold) ArchiveClosed(watermark time.Time) []*SaleArchive {
	closing := map[string]*SaleArchive{}
	for id := range f.touched {
		s, ok := f.Sales[id]
		switch {
		case !ok || !s.settled():
			delete(f.touched, id) // an event will touch it again
		case s.QuietAfter().Before(watermark):
			delete(f.touched, id)
			closing[id] = &SaleArchive{Sale: s}
		}
	}
	if len(closing) == 0 {
		return nil
	}
	open := map[string]bool{}
	for _, o := range f.Orders {
		a := closing[orderSale(o)]
		if a == nil {
			continue
		}
		if o.Status == StatusReserved || (o.Status == StatusExpired && !o.Released) {
			open[orderSale(o)] = true
		}
		a.Orders = append(a.Orders, OrderSnap{OrderState: *o, Terminals: o.terminals})
	}
	for id := range open {
		delete(closing, id)
	}
	for id, e := range f.seen {
		if a := closing[e.sale]; a != nil {
			a.Seen = append(a.Seen, SeenSnap{ID: id, Sum: e.sum, Sale: e.sale})
		}
	}
	out := make([]*SaleArchive, 0, len(closing))
	for id, a := range closing {
		f.Archived[id] = f.summarize(id, a)
		for _, o := range a.Orders {
			delete(f.Orders, o.OrderID)
		}
		for _, e := range a.Seen {
			delete(f.seen, e.ID)
		}
		delete(f.Sales, id)
		slices.SortFunc(a.Orders, func(x, y OrderSnap) int { return cmp.Compare(x.OrderID, y.OrderID) })
		slices.SortFunc(a.Seen, func(x, y SeenSnap) int { return cmp.Compare(x.ID, y.ID) })
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y *SaleArchive) int { return cmp.Compare(x.Sale.SaleID, y.Sale.SaleID) })
	return out
}

// summarize makes the summary of a sale being archived, while its orders are
// still in memory (their violations look the sale up).
func (f *Fold) summarize(id string, a *SaleArchive) *ArchivedSale {
	sum := *a.Sale
	sum.Buyers = nil
	as := &ArchivedSale{Sale: &sum, Orders: int64(len(a.Orders)), Events: int64(len(a.Seen)), Violations: saleViolations(id, a.Sale)}
	for i := range a.Orders {
		o := &a.Orders[i].OrderState
		o.terminals = a.Orders[i].Terminals
		as.Violations = append(as.Violations, f.orderViolations(o)...)
		if o.Status == "" {
			continue
		}
		as.GateOrders.GateDigest(o.OrderID, o.Status, o.UserID, o.Quantity)
		as.RowOrders.RowDigest(o.OrderID, o.SaleID, o.UserID, o.Quantity, o.Status, o.AmountCents, o.PaymentRef)
	}
	return as
}

// Reopen puts an archived sale back in memory, as it was before ArchiveClosed
// took it out; its summary goes.
func (f *Fold) Reopen(a *SaleArchive) {
	id := a.Sale.SaleID
	delete(f.Archived, id)
	f.Sales[id] = restoreSale(a.Sale)
	for i := range a.Orders {
		f.Orders[a.Orders[i].OrderID] = a.Orders[i].restore()
	}
	for _, e := range a.Seen {
		f.seen[e.ID] = seenEvent{sum: e.Sum, sale: e.Sale}
	}
	f.touched[id] = struct{}{}
}

// ArchivedIDs are the archived sales' ids, sorted.
func (f *Fold) ArchivedIDs() []string {
	ids := make([]string, 0, len(f.Archived))
	for id := range f.Archived {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func restoreSale(s *SaleState) *SaleState {
	if s.Buyers == nil {
		s.Buyers = map[string]int64{}
	}
	for _, sh := range s.ByShard {
		if sh.MovesIn == nil {
			sh.MovesIn = map[string]int64{}
		}
	}
	return s
}

func (o OrderSnap) restore() *OrderState {
	st := o.OrderState
	st.terminals = o.Terminals
	return &st
}

// OrderStates returns the archive's orders as the fold keeps them.
func (a *SaleArchive) OrderStates() []*OrderState {
	out := make([]*OrderState, len(a.Orders))
	for i := range a.Orders {
		out[i] = a.Orders[i].restore()
	}
	return out
}

// State returns the fold's memory for a snapshot, sorted so that equal folds
// give equal states.
func (f *Fold) State() FoldState {
	st := FoldState{Events: f.Events, Duplicates: f.Duplicates, Violations: slices.Clone(f.violations)}
	for _, s := range f.Sales {
		st.Sales = append(st.Sales, s)
	}
	slices.SortFunc(st.Sales, func(x, y *SaleState) int { return cmp.Compare(x.SaleID, y.SaleID) })
	for _, o := range f.Orders {
		st.Orders = append(st.Orders, OrderSnap{OrderState: *o, Terminals: o.terminals})
	}
	slices.SortFunc(st.Orders, func(x, y OrderSnap) int { return cmp.Compare(x.OrderID, y.OrderID) })
	for id, e := range f.seen {
		st.Seen = append(st.Seen, SeenSnap{ID: id, Sum: e.sum, Sale: e.sale})
	}
	slices.SortFunc(st.Seen, func(x, y SeenSnap) int { return cmp.Compare(x.ID, y.ID) })
	for _, id := range f.ArchivedIDs() {
		st.Archived = append(st.Archived, f.Archived[id])
	}
	return st
}

// FoldFromState makes the fold a State was taken of.
func FoldFromState(st FoldState) *Fold {
	f := NewFold()
	f.Events, f.Duplicates, f.violations = st.Events, st.Duplicates, st.Violations
	for _, s := range st.Sales {
		f.Sales[s.SaleID] = restoreSale(s)
		f.touched[s.SaleID] = struct{}{} // ArchiveClosed looks at it again
	}
	for i := range st.Orders {
		f.Orders[st.Orders[i].OrderID] = st.Orders[i].restore()
	}
	for _, e := range st.Seen {
		f.seen[e.ID] = seenEvent{sum: e.Sum, sale: e.Sale}
	}
	for _, a := range st.Archived {
		f.Archived[a.Sale.SaleID] = a
	}
	return f
}
