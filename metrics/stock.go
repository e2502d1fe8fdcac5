package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seckill/seckill/commands"
)

// Sales is what the stock collector reads of the gate (commands.Gate).
type Sales interface {
	// SaleIDs lists every sale the gate knows.
	SaleIDs(ctx context.Context) ([]string, error)
	// SaleCounters reads a sale's counters straight from Redis (not the
	// node's cache); ok is false when there is no such sale.
	SaleCounters(ctx context.Context, id string) (c commands.SaleCounters, ok bool, err error)
}

// StockConfig configures a StockCollector.
type StockConfig struct {
	// MaxSales bounds the sales reported per scrape (one series each, one
	// Redis read each): the first MaxSales sales that have not ended, by id.
	// Default 100.
	MaxSales int
	// Timeout bounds the Redis reads of one scrape. Default 2s.
	Timeout time.Duration
}

func (c *StockConfig) setDefaults() {
	if c.MaxSales == 0 {
		c.MaxSales = 100
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
}

// Validate reports every invalid field, joined.
func (c StockConfig) Validate() error {
	var errs []error
	if c.MaxSales < 1 {
		errs = append(errs, fmt.Errorf("max sales %d: must be at least 1", c.MaxSales))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %v: must be positive", c.Timeout))
	}
	return errors.Join(errs...)
}

// StockCollector reports the remaining stock of the sales that have not
// ended, read from the gate lazily at scrape time, at most MaxSales of them:
// one series per sale, so a system with thousands of past sales does not
// make thousands of series. An ended sale never opens again, so it is
// remembered and not read again.
type StockCollector struct {
	cfg   StockConfig
	sales Sales

	remaining, stock, shown, hidden *prometheus.Desc

	mu    sync.Mutex
	ended map[string]bool // sales seen ended: skipped for good
}

// NewStockCollector returns a collector of sales; register it on the API
// nodes' registry.
func NewStockCollector(cfg StockConfig, sales Sales) (*StockCollector, error) {
	cfg.setDefaults()
	err := cfg.Validate()
	if sales == nil {
		err = errors.Join(err, errors.New("sales is nil"))
	}
	if err != nil {
		return nil, fmt.Errorf("stock metrics: %w", err)
	}
	return &StockCollector{
		cfg: cfg, sales: sales, ended: map[string]bool{},
		remaining: prometheus.NewDesc(namespace+"_sale_stock_remaining",
			"Units left in the pool of a sale that has not ended, as the gate holds them.", []string{"sale"}, nil),
		stock: prometheus.NewDesc(namespace+"_sale_stock_initial",
			"Units a sale that has not ended started with.", []string{"sale"}, nil),
		shown: prometheus.NewDesc(namespace+"_sales_open",
			"Sales that have not ended (upcoming, active or sold out), reported or not.", nil, nil),
		hidden: prometheus.NewDesc(namespace+"_sales_unreported",
			"Sales that have not ended but are not reported because of MaxSales.", nil, nil),
	}, nil
}

// Describe sends the descriptors of every metric.
func (c *StockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.remaining
	ch <- c.stock
	ch <- c.shown
	ch <- c.hidden
}

// Collect reads the sales.
func (c *StockCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	ids, err := c.sales.SaleIDs(ctx)
	if err != nil {
		return
	}
	slices.Sort(ids)
	c.mu.Lock()
	open := ids[:0]
	for _, id := range ids {
		if !c.ended[id] {
			open = append(open, id)
		}
	}
	c.mu.Unlock()
	reported, unreported := 0, 0
	for _, id := range open {
		if reported >= c.cfg.MaxSales {
			unreported++
			continue
		}
		if ctx.Err() != nil {
			break
		}
		v, ok, err := c.sales.SaleCounters(ctx, id)
		if err != nil || !ok {
			continue
		}
		if v.Ended {
			c.mu.Lock()
			c.ended[id] = true
			c.mu.Unlock()
			continue
		}
		reported++
		ch <- prometheus.MustNewConstMetric(c.remaining, prometheus.GaugeValue, float64(v.Remaining), id)
		ch <- prometheus.MustNewConstMetric(c.stock, prometheus.GaugeValue, float64(v.Stock), id)
	}
	ch <- prometheus.MustNewConstMetric(c.shown, prometheus.GaugeValue, float64(reported+unreported))
	ch <- prometheus.MustNewConstMetric(c.hidden, prometheus.GaugeValue, float64(unreported))
}
