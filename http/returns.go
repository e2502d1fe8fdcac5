package http

import (
	"context"
	"net/http"
	"strconv"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/readmodels"
)

// ReturnsFeed is the inventory-return feed (readmodels.Daily.Returns): the
// units sales hand back to everyday inventory, for the everyday system to
// pull at its own pace.
type ReturnsFeed interface {
	Returns(ctx context.Context, cursor readmodels.ReturnsCursor, limit int) (readmodels.ReturnsPage, error)
}

// defaultReturnsPage is a page when the caller names no limit.
const defaultReturnsPage = 100

// inventoryReturns answers GET /v1/inventory/returns?cursor=&limit=: the
// returns after cursor (none: from the start), and the cursor to pass next.
// Pulling again with the same cursor answers the same returns (and any that
// came since), so a puller that crashed before saving the new cursor loses
// nothing; it deduplicates by event_id.
func (s *server) inventoryReturns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cursor, err := readmodels.ParseReturnsCursor(q.Get("cursor"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	limit := defaultReturnsPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > readmodels.MaxReturnsPage {
			writeError(w, r, s.log, domain.Invalid("limit", "must be a whole number from 1 to %d", readmodels.MaxReturnsPage))
			return
		}
		limit = n
	}
	page, err := s.Returns.Returns(r.Context(), cursor, limit)
	if err != nil {
		writeError(w, r, s.log, readModelError(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, page)
}
