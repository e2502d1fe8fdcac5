package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows how far a long command is (a rebuild, a restore's fold, an
// audit, an export): a bar redrawn in place with the rate and the ETA when w
// is a terminal, a plain line every few seconds otherwise (logs, CI). One
// implementation for every command, so they all read the same.
type progress struct {
	w        io.Writer
	unit     string
	tty      bool
	interval time.Duration

	mu    sync.Mutex
	last  time.Time
	phase string
	drawn bool
	// For counters that do not know their own rate: where the phase began.
	began time.Time
}

// newProgress returns a progress display on w counting unit ("events",
// "records").
func newProgress(w io.Writer, unit string) *progress {
	b := &progress{w: w, unit: unit, interval: 5 * time.Second}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			b.tty, b.interval = true, 200*time.Millisecond
		}
	}
	return b
}

// counter returns a callback for work that reports only done and total: the
// rate and the ETA are measured from the first call. A call with done ==
// total draws the last state.
func (b *progress) counter(phase string) func(done, total int64) {
	return func(done, total int64) {
		b.mu.Lock()
		if b.phase != phase || b.began.IsZero() {
			b.began = time.Now()
		}
		began := b.began
		b.mu.Unlock()
		el := time.Since(began).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(done) / el
		}
		var eta time.Duration
		if rate > 0 && total > done {
			eta = time.Duration(float64(total-done) / rate * float64(time.Second))
		}
		b.show(phase, done, total, rate, eta, done >= total)
	}
}

// note prints one line for a phase that has no count, once per phase.
func (b *progress) note(phase, text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if phase == b.phase {
		return
	}
	b.endLine()
	b.phase = phase
	fmt.Fprintln(b.w, text)
}

// show draws done of total in phase at rate per second with eta to go. It
// draws at most every interval, except the first state of a phase and a
// final one.
func (b *progress) show(phase string, done, total int64, rate float64, eta time.Duration, final bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	first := phase != b.phase
	if !first && !final && time.Since(b.last) < b.interval {
		return
	}
	b.last = time.Now()
	if first {
		b.endLine()
	}
	b.phase = phase
	etaText := "-"
	if eta > 0 {
		etaText = eta.Round(time.Second).String()
	}
	if total <= 0 {
		total = max(done, 1)
	}
	if b.tty {
		const width = 30
		n := max(0, min(width, int(float64(width)*float64(done)/float64(total))))
		fmt.Fprintf(b.w, "\r%-8s [%s%s] %d/%d %s  %.0f/s  ETA %s   ", phase,
			strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, b.unit, rate, etaText)
		b.drawn = true
		return
	}
	fmt.Fprintf(b.w, "%s: %d/%d %s (%.1f%%), %.0f %s/s, ETA %s\n", phase, done, total, b.unit,
		100*float64(done)/float64(total), rate, b.unit, etaText)
}

// endLine ends a bar drawn in place, so the next output starts on its own line.
func (b *progress) endLine() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

// finish ends the display; what the command prints next starts on a new line.
func (b *progress) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endLine()
}
