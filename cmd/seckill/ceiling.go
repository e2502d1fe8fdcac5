package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/go-chi/chi/v5"

	shttp "github.com/seckill/seckill/http"
)

// runCeiling serves the benchmark's first ceiling: the same chi router shape
// and route as the purchase endpoint, with a handler that does nothing but
// answer. Whatever the real purchase path costs on top of it is ours.
func runCeiling(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "ceiling", "ceiling --addr 127.0.0.1:0")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := parse(fs, args); err != nil {
		return err
	}
	body := []byte(`{"error":{"code":"sold_out","message":"sold out"}}` + "\n")
	r := chi.NewRouter()
	r.Post("/v1/sales/{id}/purchase", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "listening on %s\n", ln.Addr())
	srv := shttp.NewServer(*addr, r)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
