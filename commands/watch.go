package commands

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// WatcherConfig configures RunWatcher.
type WatcherConfig struct {
	// BlacklistRefresh is how often the node re-reads the whole blacklist, in
	// case it missed a notification. Default 10s.
	BlacklistRefresh time.Duration
	Logger           *slog.Logger
}

// RunWatcher keeps this node's memory of the protections fresh until ctx is
// done: it listens on NotifyChannel, where the scripts say when a sale sells
// out, gets stock back or ends, and the admin calls say who is blocked, and it
// re-reads the blacklist every BlacklistRefresh. Pub/sub is at-most-once, so
// nothing depends on it alone: a sold-out flag lapses after SoldOutTTL, the
// blacklist is re-read, and the purchase script decides again in any case.
// Every API node runs one.
func (g *Gate) RunWatcher(ctx context.Context, cfg WatcherConfig) error {
	if cfg.BlacklistRefresh <= 0 {
		cfg.BlacklistRefresh = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ps := g.rdb.Subscribe(ctx, g.NotifyChannel())
	defer ps.Close()
	// A receive blocked on the socket does not watch ctx (unless the client
	// has ContextTimeoutEnabled); closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	var refreshed time.Time
	refresh := func() {
		if err := g.RefreshBlacklist(ctx); err != nil && ctx.Err() == nil {
			log.Warn("refresh blacklist", "err", err)
			return
		}
		refreshed = time.Now()
	}
	backoff := 100 * time.Millisecond
	for {
		msg, err := ps.ReceiveTimeout(ctx, cfg.BlacklistRefresh)
		if ctx.Err() != nil {
			return nil
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			// (Re)subscribed: whatever was published while we were away is
			// lost, so forget what it may have changed.
			g.forgetSoldOut()
			refresh()
			backoff = 100 * time.Millisecond
		case *redis.Message:
			g.notice(m.Payload)
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			// go-redis reconnects and resubscribes on the next receive.
			log.Warn("gate notifications", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if time.Since(refreshed) >= cfg.BlacklistRefresh {
			refresh()
		}
	}
}

// notice applies one notification: "<kind> <id>".
func (g *Gate) notice(payload string) {
	kind, id, ok := strings.Cut(payload, " ")
	if !ok {
		return
	}
	switch kind {
	case "soldout":
		if sg := g.loadedGuard(id); sg != nil {
			sg.markSoldOut()
		}
	case "stock":
		if sg := g.loadedGuard(id); sg != nil {
			sg.clearSoldOut()
		}
	case "ended":
		if sg := g.loadedGuard(id); sg != nil {
			sg.ended.Store(true)
		}
	case "block":
		g.noteBlocked(id, true)
	case "unblock":
		g.noteBlocked(id, false)
	}
}

// forgetSoldOut clears every sold-out flag: the next request of each sale asks Redis.
func (g *Gate) forgetSoldOut() {
	g.guards.Range(func(_, v any) bool {
		v.(*saleGuard).clearSoldOut()
		return true
	})
}
