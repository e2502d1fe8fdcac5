package foldgen

import (
	"fmt"
	"strconv"
	"time"

	"github.com/seckill/seckill/domain"
)

// YearShape tells what Year wrote.
type YearShape struct {
	Events, Orders int
	// Base is when the first day's sale opens.
	Base time.Time
	// SomeOrder and SomeSale are an order and its sale in the middle of the
	// log, for lookups.
	SomeOrder, SomeSale string
}

// Year writes a year-like log of about events events (make bench-log, and the
// tests of the fold's memory): one sale a day for days days; each opens at
// 20:00, its orders come in its first ten minutes, 70% are paid within a
// minute and 30% expire after fifteen (and release their stock), and the sale
// ends at its window's close. emit gets the events in log order with when
// they occurred; an error from it stops the log and is returned.
func Year(events, days int, emit func(domain.Event, time.Time) error) (YearShape, error) {
	lg := YearShape{Base: time.Date(2025, 11, 11, 20, 0, 0, 0, time.UTC)}
	perDay := events / days
	put := func(e domain.Event, at time.Time) error {
		lg.Events++
		return emit(e, at)
	}
	for d := range days {
		start := lg.Base.Add(time.Duration(d) * 24 * time.Hour)
		sale := fmt.Sprintf("day%03d", d)
		orders := (perDay - 2) * 10 / 33 // 3.3 events per order on average
		if err := put(domain.SaleCreated{SaleID: sale, SaleSpec: domain.SaleSpec{SaleTerms: domain.SaleTerms{
			Name: "daily", Stock: int64(orders), PriceCents: 1999, StartsAt: start,
			EndsAt: start.Add(time.Hour), PerUserLimit: 1, PayWithinS: 900, Currency: "CNY",
		}}}, start); err != nil {
			return lg, err
		}
		step := 10 * time.Minute / time.Duration(max(orders, 1))
		for i := range orders {
			if err := yearOrder(put, sale, i, start.Add(time.Duration(i)*step)); err != nil {
				return lg, err
			}
			lg.Orders++
			if d == days/2 && i == orders/2 {
				lg.SomeOrder, lg.SomeSale = domain.OrderID(sale, strconv.Itoa(i)), sale
			}
		}
		if err := put(domain.SaleEnded{SaleID: sale, Unsold: 0, Reason: domain.EndReasonWindowClosed}, start.Add(time.Hour)); err != nil {
			return lg, err
		}
	}
	return lg, nil
}

// yearOrder emits the i-th order of a Year sale, placed at at.
func yearOrder(put func(domain.Event, time.Time) error, sale string, i int, at time.Time) error {
	o, u := domain.OrderID(sale, strconv.Itoa(i)), "u"+strconv.Itoa(i)
	evs := []domain.Event{
		domain.StockReserved{SaleID: sale, OrderID: o, UserID: u, Quantity: 1},
		domain.OrderPlaced{OrderID: o, SaleID: sale, UserID: u, Quantity: 1, PriceCents: 1999, AmountCents: 1999, PayBy: at.Add(15 * time.Minute)},
	}
	ats := []time.Time{at, at}
	if i%10 < 7 {
		evs = append(evs, domain.OrderPaid{OrderID: o, SaleID: sale, UserID: u, Quantity: 1, AmountCents: 1999, PaymentRef: "p" + o})
		ats = append(ats, at.Add(time.Minute))
	} else {
		evs = append(evs, domain.OrderExpired{OrderID: o, SaleID: sale, UserID: u, Quantity: 1},
			domain.StockReleased{SaleID: sale, OrderID: o, Quantity: 1, ToPool: true})
		ats = append(ats, at.Add(15*time.Minute), at.Add(15*time.Minute))
	}
	for j, e := range evs {
		if err := put(e, ats[j]); err != nil {
			return err
		}
	}
	return nil
}
