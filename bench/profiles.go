package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	shttp "github.com/seckill/seckill/http"
	"github.com/seckill/seckill/internal/loadgen"
)

// profiles runs one more sold-out and one more purchase phase, 12 s each,
// while fetching 8 s CPU and allocation profiles from both processes'
// admin listeners into cfg.profile (docs/performance.md reads them).
func (b *bench) profiles(ctx context.Context) error {
	if err := os.MkdirAll(b.cfg.profile, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.cfg.profile, "seckill"), mustRead(b.bin), 0o755); err != nil {
		return err
	}
	// What the API node holds after every phase of the run (its RSS above).
	if err := fetch(ctx, "http://"+b.apiAdmin+"/debug/pprof/heap?gc=1", filepath.Join(b.cfg.profile, "end.api.heap.pb.gz")); err != nil {
		return err
	}
	soldOut, err := b.createSale(ctx, 1)
	if err != nil {
		return err
	}
	first, err := shttp.NewToken(b.secret, "first-buyer", false, time.Hour)
	if err != nil {
		return err
	}
	if err := b.call(ctx, "POST", "/v1/sales/"+soldOut+"/purchase", first, "", http.StatusAccepted, nil); err != nil {
		return err
	}
	plenty, err := b.createSale(ctx, 5_000_000)
	if err != nil {
		return err
	}
	for _, ph := range []struct{ name, sale string }{{"soldout", soldOut}, {"purchase", plenty}} {
		// The whole pool, from where the phases before left it: distinct
		// users until the phase has sent as many requests as the pool holds.
		tokens := b.pool.take(len(b.pool.tokens))
		next := purchases("/v1/sales/"+ph.sale+"/purchase", tokens)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			perr error
		)
		for _, p := range []struct{ proc, admin string }{{"api", b.apiAdmin}, {"dev", b.devAdmin}} {
			for _, kind := range []string{"profile", "allocs"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(2 * time.Second)
					file := filepath.Join(b.cfg.profile, fmt.Sprintf("%s.%s.%s.pb.gz", ph.name, p.proc, map[string]string{"profile": "cpu", "allocs": "allocs"}[kind]))
					if err := fetch(ctx, "http://"+p.admin+"/debug/pprof/"+kind+"?seconds=8", file); err != nil {
						mu.Lock()
						perr = err
						mu.Unlock()
					}
				}()
			}
		}
		res, err := loadgen.Run(ctx, loadgen.Config{BaseURL: b.api, Concurrency: b.cfg.conc, Duration: 12 * time.Second,
			Next: func(i int) loadgen.Request { return next(i % len(tokens)) }}, nil)
		wg.Wait()
		if err != nil {
			return err
		}
		if perr != nil {
			return perr
		}
		b.logf("%s", res.Table("profiled: "+ph.name))
		if err := b.waitSettled(ctx, "profile "+ph.name); err != nil {
			return err
		}
	}
	b.logf("profiles in %s: go tool pprof -top %s/seckill %s/purchase.api.cpu.pb.gz", b.cfg.profile, b.cfg.profile, b.cfg.profile)
	return nil
}

func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func mustRead(name string) []byte {
	b, _ := os.ReadFile(name)
	return b
}
