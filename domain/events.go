package domain

import "time"

// Event types as they appear in the log. They are part of the log's contract:
// never rename one; add a new type or a new schema version instead.
const (
	TypeSaleCreated   = "SaleCreated"
	TypeStockReserved = "StockReserved"
	TypeOrderPlaced   = "OrderPlaced"
	TypeOrderPaid     = "OrderPaid"
	TypeOrderExpired  = "OrderExpired"
	TypeStockReleased = "StockReleased"
	TypeSaleEnded     = "SaleEnded"
)

// Event is a fact that happened to a sale or an order. Its aggregate id is the
// Kafka record key, so all events of one aggregate stay in order.
type Event interface {
	EventType() string
	AggregateID() string
}

// SaleCreated opens a sale with its whole configuration; aggregate: the sale.
// Its members are SaleSpec's (SaleTerms, Protections, Shards), inlined by
// JSON and the codec in that order after sale_id. Schema v2 added Currency
// (v1 events are upcast with DefaultCurrency).
type SaleCreated struct {
	SaleID string `json:"sale_id"`
	SaleSpec
}

// StockReserved takes units out of a sale's pool for one order. Its aggregate is
// the order (the reservation), not the sale: keyed by sale, one hot sale would
// put every purchase into a single partition.
type StockReserved struct {
	SaleID   string `json:"sale_id"`
	OrderID  string `json:"order_id"`
	UserID   string `json:"user_id"`
	Quantity int64  `json:"quantity"`
}

// OrderPlaced records the order a reservation belongs to; aggregate: the order.
// Schema v2 added IdempotencyKey.
type OrderPlaced struct {
	OrderID     string    `json:"order_id"`
	SaleID      string    `json:"sale_id"`
	UserID      string    `json:"user_id"`
	Quantity    int64     `json:"quantity"`
	PriceCents  int64     `json:"price_cents"`
	AmountCents int64     `json:"amount_cents"`
	PayBy       time.Time `json:"pay_by"`
	// IdempotencyKey is the key the purchase was made with ("" for none),
	// so that a gate restored from the log answers a retry with this order
	// (v2; v1 events did not say, and are read as made without a key).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// OrderPaid is the terminal state of a paid order; aggregate: the order.
type OrderPaid struct {
	OrderID     string `json:"order_id"`
	SaleID      string `json:"sale_id"`
	UserID      string `json:"user_id"`
	Quantity    int64  `json:"quantity"`
	AmountCents int64  `json:"amount_cents"`
	PaymentRef  string `json:"payment_ref"`
}

// OrderExpired is the terminal state of an order not paid in time; aggregate:
// the order. It is always followed by the StockReleased of its units.
type OrderExpired struct {
	OrderID  string `json:"order_id"`
	SaleID   string `json:"sale_id"`
	UserID   string `json:"user_id"`
	Quantity int64  `json:"quantity"`
}

// StockReleased returns the units of an expired order; aggregate: the order.
// While the sale runs they go back to its pool (ToPool); after the end they go
// back to regular inventory, because the pool of an ended sale is closed. The
// flag is stated rather than derived because SaleEnded and StockReleased have
// different keys, so their relative order in the log is not guaranteed.
type StockReleased struct {
	SaleID   string `json:"sale_id"`
	OrderID  string `json:"order_id"`
	Quantity int64  `json:"quantity"`
	ToPool   bool   `json:"to_pool"`
}

// SaleEnded closes a sale and returns its unsold pool to regular inventory;
// aggregate: the sale.
type SaleEnded struct {
	SaleID string `json:"sale_id"`
	Unsold int64  `json:"unsold"`
	// Reason is EndReasonEarly (an admin ended it) or EndReasonWindowClosed.
	Reason string `json:"reason"`
	// ShardsUnsold is Unsold per shard of a sharded sale (their sum is
	// Unsold); omitted for an unsharded sale.
	ShardsUnsold []int64 `json:"shards_unsold,omitempty"`
}

// Reasons a sale ends.
const (
	EndReasonEarly        = "ended_early"
	EndReasonWindowClosed = "window_closed"
)

func (SaleCreated) EventType() string   { return TypeSaleCreated }
func (StockReserved) EventType() string { return TypeStockReserved }
func (OrderPlaced) EventType() string   { return TypeOrderPlaced }
func (OrderPaid) EventType() string     { return TypeOrderPaid }
func (OrderExpired) EventType() string  { return TypeOrderExpired }
func (StockReleased) EventType() string { return TypeStockReleased }
func (SaleEnded) EventType() string     { return TypeSaleEnded }

func (e SaleCreated) AggregateID() string   { return e.SaleID }
func (e StockReserved) AggregateID() string { return e.OrderID }
func (e OrderPlaced) AggregateID() string   { return e.OrderID }
func (e OrderPaid) AggregateID() string     { return e.OrderID }
func (e OrderExpired) AggregateID() string  { return e.OrderID }
func (e StockReleased) AggregateID() string { return e.OrderID }
func (e SaleEnded) AggregateID() string     { return e.SaleID }
