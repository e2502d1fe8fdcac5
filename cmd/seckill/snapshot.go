package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/seckill/seckill/snapshot"
)

// snapshotFlags are the fold snapshot flags of `gate restore`, `audit` and
// `snapshot` (docs/snapshots.md).
type snapshotFlags struct {
	dir   string
	fresh bool
}

func (s *snapshotFlags) bind(c cli, fs *flag.FlagSet) {
	fs.StringVar(&s.dir, "snapshots", c.getenv("SECKILL_SNAPSHOTS"),
		"`DIR` of fold snapshots: the fold starts from the newest one that verifies (default DATA/snapshots; env SECKILL_SNAPSHOTS)")
	fs.BoolVar(&s.fresh, "fresh", false, "fold the whole log from the beginning, ignoring the snapshots")
}

// options returns the snapshot options of a fold for ep, whose data folder is
// the default home of the snapshots. Warnings (a snapshot that does not
// verify) and progress go to the progress display.
func (s *snapshotFlags) options(c cli, ep *endpoints, bar *progress) snapshot.Options {
	dir := s.dir
	if dir == "" {
		dir = filepath.Join(ep.Data, "snapshots")
	}
	return snapshot.Options{Dir: dir, Fresh: s.fresh, Progress: bar.counter("fold"),
		Warn: func(w string) { fmt.Fprintln(c.stderr, "warning:", w) }}
}

// fold folds the log of ep from the newest snapshot, with its progress on
// stderr, and says on stdout where it started and what it read.
func (s *snapshotFlags) fold(ctx context.Context, c cli, ep *endpoints) (*snapshot.Result, error) {
	start := time.Now()
	bar := newProgress(c.stderr, "records")
	res, err := snapshot.Fold(ctx, ep.brokerList(), ep.Topic, s.options(c, ep, bar))
	bar.finish()
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(c.stdout, describeFold(res, time.Since(start)))
	return res, nil
}

// describeFold says where a fold started and what it read.
func describeFold(res *snapshot.Result, took time.Duration) string {
	from := "the beginning of the log"
	if res.From != nil {
		from = fmt.Sprintf("snapshot %s (%d records)", res.From.Path, res.From.Records)
	}
	return fmt.Sprintf("folded %d events (%d records, %d duplicates; %d sales, %d closed) from %s and %d records after it in %s",
		res.Fold.Events, res.Records, res.Fold.Duplicates, res.Fold.SaleCount(), len(res.Fold.Archived), from,
		res.Stats.Records, took.Round(time.Millisecond))
}

// runSnapshot is `seckill snapshot`: fold the log from the newest snapshot
// and save a new one at its end.
func runSnapshot(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "snapshot", "snapshot [--snapshots DIR] [--fresh]\n\n"+
		"Folds the event log from the newest fold snapshot (or from the beginning) and saves a new snapshot at\n"+
		"the log's end, so that `gate restore` and `audit` read only what came after it. Keeps the newest two.\n"+
		"It only reads the log: run it whenever (a daily job, after a large sale). `audit` saves one too.")
	var ep endpoints
	ep.bind(c, fs)
	var sf snapshotFlags
	sf.bind(c, fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	ep.fromDev()
	if err := ep.need(false, false, true, false); err != nil {
		return err
	}
	res, err := sf.fold(ctx, c, &ep)
	if err != nil {
		return err
	}
	defer res.Close()
	path, err := res.Save()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "saved %s\n", path)
	return nil
}
