package http

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seckill/seckill/commands"
)

// Gate is the write side as the handlers use it (commands.Gate).
type Gate interface {
	CreateSale(ctx context.Context, cmd commands.CreateSale) (commands.SaleView, error)
	Sale(ctx context.Context, id string) (commands.SaleView, error)
	Purchase(ctx context.Context, cmd commands.Purchase) (commands.Reservation, error)
	Pay(ctx context.Context, cmd commands.Pay) (commands.Payment, error)
	Order(ctx context.Context, orderID string) (commands.GateOrder, error)
	EndSale(ctx context.Context, cmd commands.EndSale) (commands.SaleView, error)
	// The protections (http/protect.go).
	PurchaseToken(ctx context.Context, saleID, userID string) (commands.PurchaseToken, error)
	Block(ctx context.Context, userID string) error
	Unblock(ctx context.Context, userID string) error
	Blacklist(ctx context.Context) ([]string, error)
}

// Check is one readiness probe: a dependency and how to ping it.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Config is what the router is built from.
type Config struct {
	Gate   Gate
	Orders OrderReader
	Auth   *Authenticator
	// Ready lists the dependencies /readyz pings (PublicReadyHandler: it
	// says ready or not, never what failed where).
	Ready []Check
	// RequestTimeout bounds every handler; default 10s.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// Sales, when set, serves GET /v1/sales, the list on the sale page's index.
	Sales SaleLister
	// Events, when set, serves GET /v1/admin/events, the log exported as
	// NDJSON or CSV (http/events.go).
	Events EventLog
	// Inventory, Daily and Projections, when set, serve the admin calls
	// GET /v1/sales/{id}/inventory, GET /v1/reports/daily and
	// GET /v1/admin/projections (http/projections.go).
	Inventory InventoryReader
	Daily     DailyReporter
	// Returns, when set, serves the inventory-return feed (admin).
	Returns     ReturnsFeed
	Projections ProjectionStatuser
	// DevSignIn enables POST /v1/dev/token, which mints a user token for any
	// user id without a password, for demos of the sale page. Off unless
	// asked for: on a real deployment it would let anyone act as anyone.
	DevSignIn bool
	// Registry, when set, receives the router's metrics (requests by route
	// and outcome, latency). It is the process's one registry, holding
	// everything else it measures too; the admin listener serves it
	// (MetricsHandler), this router does not.
	Registry *prometheus.Registry
	// StatusMaxAge is how long caches may serve a sale status
	// (GET /v1/sales/{id}); 0: DefaultStatusMaxAge; negative: every use
	// revalidates (no-cache).
	StatusMaxAge time.Duration
	// ClientLimit is the per-client-address limit on /v1 (off unless RPS > 0).
	ClientLimit ClientLimitConfig
	// Challenges, when set, serves GET /v1/sales/{id}/challenge and checks
	// the solution that sales with challenge_bits want before a purchase
	// token (http/challenge.go).
	Challenges Challenger
	// Draws, when set, turns purchases in draw-mode sales into entries of
	// the slice's draw and serves GET /v1/sales/{id}/draw (package draw).
	Draws Drawer
	// AccessLog configures the log line per request (http/trace.go).
	AccessLog AccessLog
	// DeadLetters, when set, serves /v1/admin/deadletters: list, show,
	// retry and discard the projections' dead letters (http/deadletters.go).
	DeadLetters DeadLetterAdmin
}

func (c Config) validate() error {
	var errs []error
	if c.Gate == nil {
		errs = append(errs, errors.New("http: Gate is required"))
	}
	if c.Orders == nil {
		errs = append(errs, errors.New("http: Orders is required"))
	}
	if c.Auth == nil {
		errs = append(errs, errors.New("http: Auth is required"))
	}
	errs = append(errs, c.ClientLimit.validate())
	return errors.Join(errs...)
}

type server struct {
	Config
	log         *slog.Logger
	statusCache string // Cache-Control of a sale status
	// soldOutMemory is the gate, when it can tell a sale sold out from
	// memory (http/purchase.go); nil otherwise.
	soldOutMemory memorySoldOut
}

// NewHandler builds the REST API.
func NewHandler(cfg Config) (http.Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.StatusMaxAge == 0 {
		cfg.StatusMaxAge = DefaultStatusMaxAge
	}
	s := &server{Config: cfg, log: cfg.Logger, statusCache: statusCacheControl(cfg.StatusMaxAge)}
	s.soldOutMemory, _ = cfg.Gate.(memorySoldOut)
	r := chi.NewRouter()
	if cfg.Registry != nil {
		m, err := newHTTPMetrics(cfg.Registry)
		if err != nil {
			return nil, err
		}
		// Outside the recoverer, so a panic counts as the 500 it becomes.
		r.Use(m.middleware)
	}
	// Request id (echoed as X-Request-Id), the events' metadata and the
	// access log (http/trace.go); inside the metrics, which share its
	// status-recording writer.
	r.Use(newTracer(cfg.AccessLog).middleware)
	r.Use(s.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.log, &apiError{status: http.StatusNotFound, code: "not_found", message: "no such route"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.log, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: r.Method + " is not allowed here"})
	})
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", PublicReadyHandler(cfg.Ready))
	doc, err := openAPIHandler()
	if err != nil {
		return nil, err
	}
	r.Get("/openapi.json", doc)
	if err := s.routePage(r); err != nil {
		return nil, err
	}
	if cfg.Events != nil {
		// Outside /v1's request timeout: an export streams for as long as
		// the log is long (http/events.go).
		r.With(s.authenticate, s.adminOnly).Get("/v1/admin/events", s.adminEvents)
	}
	r.Route("/v1", func(r chi.Router) {
		if lim := newClientLimiter(cfg.ClientLimit); lim != nil {
			r.Use(lim.middleware)
		}
		// The purchase is the one call a flash sale is made of, so it skips
		// the handler timeout (a context and a timer per request, ~5% of a
		// sold_out answer): it waits on nothing but the gate, and the gate
		// bounds each of its Redis calls itself (GateConfig.RedisTimeout).
		// It verifies the token itself, after a sold-out answer that does
		// not need it (http/purchase.go).
		r.Post("/sales/{id}/purchase", s.purchase)
		r.Group(func(r chi.Router) {
			r.Use(middleware.Timeout(cfg.RequestTimeout))
			s.routeV1(r)
		})
	})
	return r, nil
}

// routeV1 adds every /v1 call but the purchase, under the handler timeout.
func (s *server) routeV1(r chi.Router) {
	cfg := s.Config
	r.Get("/sales/{id}", s.getSale)
	r.Get("/time", s.getTime)
	if cfg.Sales != nil {
		r.Get("/sales", s.listSales)
	}
	if cfg.DevSignIn {
		r.Post("/dev/token", s.devToken)
	}
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Get("/sales/{id}/token", s.purchaseToken)
		r.Get("/sales/{id}/challenge", s.getChallenge)
		r.Get("/sales/{id}/draw", s.getDrawResult)
		r.Get("/orders/{id}", s.getOrder)
		r.Post("/orders/{id}/pay", s.pay)
		r.Get("/users/me/orders", s.myOrders)
		r.Group(func(r chi.Router) {
			r.Use(s.adminOnly)
			r.Post("/sales", s.createSale)
			r.Post("/sales/{id}/end", s.endSale)
			r.Get("/admin/blacklist", s.blacklist)
			r.Post("/admin/blacklist", s.block)
			r.Delete("/admin/blacklist/{user_id}", s.unblock)
			s.routeProjections(r)
		})
	})
}

func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, errorBody{errorDetail{Code: "internal", Message: "internal error"}})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// ReadyHandler answers readiness in detail, for the private admin listener:
// 200 when every check pings within 2s, 503 otherwise, with each check's
// "ok" or error — errors that name hosts and ports.
func ReadyHandler(checks []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		results := pingAll(r.Context(), checks)
		status, code := make(map[string]string, len(checks)), http.StatusOK
		for i, c := range checks {
			if err := results[i]; err != nil {
				status[c.Name], code = err.Error(), http.StatusServiceUnavailable
				continue
			}
			status[c.Name] = "ok"
		}
		writeJSON(w, code, status)
	}
}

// PublicReadyHandler answers readiness for load balancers on the public
// listener: the same checks, but only {"status":"ready"} or 503
// {"status":"unavailable"} — what is down, and where, is for the admin
// listener's ReadyHandler.
func PublicReadyHandler(checks []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, err := range pingAll(r.Context(), checks) {
			if err != nil {
				w.Header().Set("Retry-After", "1")
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// pingAll runs every check within 2s and returns their errors in order. The
// checks run in parallel, so one dependency that hangs does not hide the
// state of the others.
func pingAll(ctx context.Context, checks []Check) []error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	results := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { results[i] = c.Ping(ctx) })
	}
	wg.Wait()
	return results
}

// NewServer wraps h in an http.Server with timeouts on every phase, so a slow
// or silent client cannot hold a connection forever.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}
