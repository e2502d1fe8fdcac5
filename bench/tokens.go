package main

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	shttp "github.com/seckill/seckill/http"
)

// tokenPool hands out pre-minted user tokens, each request the next user of
// the pool, as a sale sees its shoppers: a real sale is many users sending
// a few requests each, so a node meets most tokens for the first time and
// pays the signature check (issue 13). A pool larger than the API's cache of
// verified tokens (http/authcache.go, at most 16,384) and larger than any
// phase keeps that true across phases too: a token comes round again only
// after the whole pool, long after the cache dropped it.
type tokenPool struct {
	tokens []string // "Bearer …", user "s<i>" at i
	next   int      // the next token handed out; phases run one after another
}

// mintPool signs n tokens for users s0 … s(n-1), on every core: ~300,000
// take a couple of seconds, before any phase starts.
func mintPool(secret []byte, n int) (*tokenPool, error) {
	p := &tokenPool{tokens: make([]string, n)}
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				t, err := shttp.NewToken(secret, "s"+strconv.Itoa(i), false, 3*time.Hour)
				if err != nil {
					errs[w] = err
					return
				}
				p.tokens[i] = "Bearer " + t
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("mint the token pool: %w", err)
		}
	}
	return p, nil
}

// take returns the next n tokens, wrapping round the pool. Within one
// phase they are n distinct users when n ≤ the pool's size (take checks
// it for the phases that need it: distinctUsers).
func (p *tokenPool) take(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = p.tokens[p.next]
		p.next = (p.next + 1) % len(p.tokens)
	}
	return out
}

// distinct is take for a phase whose users must all differ (purchases
// under a per-user limit of 1).
func (p *tokenPool) distinct(n int) ([]string, error) {
	if n > len(p.tokens) {
		return nil, fmt.Errorf("a phase of %d distinct users needs a token pool at least that large (-tokens %d)", n, len(p.tokens))
	}
	return p.take(n), nil
}
