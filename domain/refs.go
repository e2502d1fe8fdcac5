package domain

// Refs are the references every event type may carry, for filters and flat
// exports: the sale, the order and the user it is about, and the units it
// moves. A field the event does not carry is empty.
type Refs struct {
	SaleID   string
	OrderID  string
	UserID   string
	Quantity int64
}

// RefsOf returns the references of e. StockReleased names no user and
// SaleEnded's quantity is its unsold pool.
func RefsOf(e Event) Refs {
	switch v := e.(type) {
	case SaleCreated:
		return Refs{SaleID: v.SaleID, Quantity: v.Stock}
	case StockReserved:
		return Refs{SaleID: v.SaleID, OrderID: v.OrderID, UserID: v.UserID, Quantity: v.Quantity}
	case OrderPlaced:
		return Refs{SaleID: v.SaleID, OrderID: v.OrderID, UserID: v.UserID, Quantity: v.Quantity}
	case OrderPaid:
		return Refs{SaleID: v.SaleID, OrderID: v.OrderID, UserID: v.UserID, Quantity: v.Quantity}
	case OrderExpired:
		return Refs{SaleID: v.SaleID, OrderID: v.OrderID, UserID: v.UserID, Quantity: v.Quantity}
	case StockReleased:
		return Refs{SaleID: v.SaleID, OrderID: v.OrderID, Quantity: v.Quantity}
	case SaleEnded:
		return Refs{SaleID: v.SaleID, Quantity: v.Unsold}
	case StockMoved:
		return Refs{SaleID: v.SaleID, Quantity: v.Quantity}
	case DrawHeld:
		return Refs{SaleID: v.SaleID, Quantity: v.Units}
	}
	return Refs{}
}
