package http

import (
	"context"
	"encoding/csv"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/projections"
	"github.com/seckill/seckill/readmodels"
)

// InventoryReader is the inventory read model (readmodels.Inventory).
type InventoryReader interface {
	// GetInventory returns a sale's inventory, or domain.ErrSaleNotFound.
	GetInventory(ctx context.Context, saleID string) (readmodels.InventoryView, error)
}

// DailyReporter is the daily-order read model (readmodels.Daily).
type DailyReporter interface {
	// DailyReport returns the summary of the business days from through to,
	// both included.
	DailyReport(ctx context.Context, from, to time.Time) ([]readmodels.DailyRow, error)
	// Location is the time zone of the business day.
	Location() *time.Location
}

// ProjectionStatuser reports how far the projections are (projections.Monitor).
type ProjectionStatuser interface {
	Status(ctx context.Context) ([]projections.ProjectionStatus, error)
}

// maxReportDays bounds one daily report, so that one request cannot ask the
// read model for years of rows.
const maxReportDays = 366

// routeProjections adds the admin routes of the read models that are
// configured; r already requires an admin.
func (s *server) routeProjections(r chi.Router) {
	if s.Inventory != nil {
		r.Get("/sales/{id}/inventory", s.getInventory)
	}
	if s.Daily != nil {
		r.Get("/reports/daily", s.dailyReport)
	}
	if s.Returns != nil {
		r.Get("/inventory/returns", s.inventoryReturns) // returns.go
	}
	if s.Projections != nil {
		r.Get("/admin/projections", s.projectionStatus)
	}
	s.routeDeadLetters(r)
}

func (s *server) getInventory(w http.ResponseWriter, r *http.Request) {
	saleID, err := pathID(r, domain.ErrSaleNotFound)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	v, err := s.Inventory.GetInventory(r.Context(), saleID)
	if err != nil {
		writeError(w, r, s.log, readModelError(err))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// dailyReportBody is the JSON form of the daily report.
type dailyReportBody struct {
	From     string                `json:"from"`
	To       string                `json:"to"`
	TimeZone string                `json:"time_zone"`
	Rows     []readmodels.DailyRow `json:"rows"`
}

// dailyReport answers GET /v1/reports/daily?from=YYYY-MM-DD&to=YYYY-MM-DD
// (both included; default: the last seven business days) as JSON, or as CSV
// when the client accepts text/csv.
func (s *server) dailyReport(w http.ResponseWriter, r *http.Request) {
	loc := s.Daily.Location()
	y, m, d := time.Now().In(loc).Date()
	to := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	from := to.AddDate(0, 0, -6)
	q := r.URL.Query()
	var err error
	if v := q.Get("to"); v != "" {
		if to, err = time.Parse(time.DateOnly, v); err != nil {
			writeError(w, r, s.log, domain.Invalid("to", "want a date YYYY-MM-DD, got %q", v))
			return
		}
		if q.Get("from") == "" {
			from = to.AddDate(0, 0, -6)
		}
	}
	if v := q.Get("from"); v != "" {
		if from, err = time.Parse(time.DateOnly, v); err != nil {
			writeError(w, r, s.log, domain.Invalid("from", "want a date YYYY-MM-DD, got %q", v))
			return
		}
	}
	switch days := int(to.Sub(from).Hours()/24) + 1; {
	case days < 1:
		writeError(w, r, s.log, domain.Invalid("from", "must not be after to"))
		return
	case days > maxReportDays:
		writeError(w, r, s.log, domain.Invalid("to", "a report covers at most %d days", maxReportDays))
		return
	}
	rows, err := s.Daily.DailyReport(r.Context(), from, to)
	if err != nil {
		writeError(w, r, s.log, readModelError(err))
		return
	}
	if rows == nil {
		rows = []readmodels.DailyRow{}
	}
	if acceptsCSV(r) {
		writeDailyCSV(w, from, to, rows)
		return
	}
	writeJSON(w, http.StatusOK, dailyReportBody{
		From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), TimeZone: loc.String(), Rows: rows,
	})
}

// acceptsCSV reports whether the Accept header asks for text/csv.
func acceptsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/csv" {
			return true
		}
	}
	return false
}

func writeDailyCSV(w http.ResponseWriter, from, to time.Time, rows []readmodels.DailyRow) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="daily-`+from.Format(time.DateOnly)+`-`+to.Format(time.DateOnly)+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"day", "sale_id", "sale_name", "currency", "placed", "paid", "expired", "revenue_cents", "buyers"})
	i := strconv.FormatInt
	for _, row := range rows {
		_ = cw.Write([]string{row.Day, row.SaleID, row.SaleName, row.Currency,
			i(row.Placed, 10), i(row.Paid, 10), i(row.Expired, 10), i(row.RevenueCents, 10), i(row.Buyers, 10)})
	}
	cw.Flush()
}

func (s *server) projectionStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.Projections.Status(r.Context())
	if err != nil {
		writeError(w, r, s.log, readModelError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"projections": st})
}
