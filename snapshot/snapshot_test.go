package snapshot_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/domain/foldgen"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/snapshot"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const topic = testenv.Topic

// produce writes encoded envelopes to the log, keyed by aggregate as the relay does.
func produce(t *testing.T, brokers []string, envs [][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(eventstore.Partitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(envs))
	for i, b := range envs {
		_, ev, err := domain.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Key: []byte(ev.AggregateID()), Value: b}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// whole reopens every archive of res, so its fold holds all of the log.
func whole(t *testing.T, res *snapshot.Result) string {
	t.Helper()
	for _, id := range res.Fold.ArchivedIDs() {
		a, err := res.Archive(id)
		if err != nil {
			t.Fatal(err)
		}
		res.Fold.Reopen(a)
	}
	s, err := foldgen.Canonical(res.Fold)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fullFold is the fold of the whole log in memory, as the tools did before snapshots.
func fullFold(t *testing.T, brokers []string) string {
	t.Helper()
	f, _, err := eventstore.FoldLog(context.Background(), brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	s, err := foldgen.Canonical(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func foldDir(t *testing.T, brokers []string, opt snapshot.Options) *snapshot.Result {
	t.Helper()
	res, err := snapshot.Fold(context.Background(), brokers, topic, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	return res
}

// TestSnapshotAndTailEqualFullFold: over random logs written in parts, with a
// snapshot saved after each part, the fold from the last snapshot plus the
// log after it equals a fold of the whole log; it reads only the tail, and
// its memory holds only open sales.
func TestSnapshotAndTailEqualFullFold(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		brokers := testenv.Kafka(t, 4)
		envs, err := foldgen.Log(seed, foldgen.Config{Sales: 8 + int(seed), MaxOrders: 12, Dups: 0.1, LateDups: 0.3, Broken: 0.05})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		cuts := []int{len(envs) / 3, len(envs) * 2 / 3, len(envs)}
		prev := 0
		for i, cut := range cuts {
			produce(t, brokers, envs[prev:cut])
			res := foldDir(t, brokers, snapshot.Options{Dir: dir, Warn: func(w string) { t.Errorf("seed %d: warning %s", seed, w) }})
			if i > 0 && (res.From == nil || res.Stats.Records != int64(cut-prev)) {
				t.Fatalf("seed %d part %d: from %+v, read %d records; want the snapshot and the %d after it", seed, i, res.From, res.Stats.Records, cut-prev)
			}
			if res.Records != int64(cut) {
				t.Errorf("seed %d part %d: %d records folded in all, want %d", seed, i, res.Records, cut)
			}
			for _, o := range res.Fold.Orders {
				if _, ok := res.Fold.Archived[o.SaleID]; ok {
					t.Errorf("seed %d: order %s of an archived sale in memory", seed, o.OrderID)
				}
			}
			if i < len(cuts)-1 {
				if _, err := res.Save(); err != nil {
					t.Fatal(err)
				}
			} else if got, want := whole(t, res), fullFold(t, brokers); got != want {
				t.Fatalf("seed %d: snapshot + tail differs from the full fold\n got %s\nwant %s", seed, got, want)
			}
			prev = cut
		}
		if paths, _ := filepath.Glob(filepath.Join(dir, topic+".*.snap")); len(paths) != 2 {
			t.Errorf("seed %d: %d snapshots kept, want 2: %v", seed, len(paths), paths)
		}
	}
}

// TestDamagedSnapshotIsIgnored: a snapshot with a byte changed, or cut
// short, does not verify; the fold warns, starts from the beginning and
// still equals the full fold.
func TestDamagedSnapshotIsIgnored(t *testing.T) {
	t.Parallel()
	damages := map[string]func([]byte) []byte{
		"byte flipped": func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-100] },
		"empty":        func([]byte) []byte { return nil },
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			brokers := testenv.Kafka(t, 2)
			envs, err := foldgen.Log(11, foldgen.Config{Sales: 6, MaxOrders: 10, Dups: 0.1, LateDups: 0.5})
			if err != nil {
				t.Fatal(err)
			}
			produce(t, brokers, envs[:len(envs)/2])
			dir := t.TempDir()
			path, err := foldDir(t, brokers, snapshot.Options{Dir: dir}).Save()
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			produce(t, brokers, envs[len(envs)/2:])
			var warnings []string
			res := foldDir(t, brokers, snapshot.Options{Dir: dir, Warn: func(w string) { warnings = append(warnings, w) }})
			if res.From != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "does not verify") {
				t.Fatalf("from %+v, warnings %q; want the snapshot ignored with one warning", res.From, warnings)
			}
			if res.Stats.Records != int64(len(envs)) {
				t.Errorf("read %d records, want all %d", res.Stats.Records, len(envs))
			}
			if got, want := whole(t, res), fullFold(t, brokers); got != want {
				t.Fatalf("fold after the damaged snapshot differs from the full fold")
			}
		})
	}
}

// TestSnapshotOfAnotherLog: a snapshot that read further than the log goes
// (the topic was recreated) is ignored with a warning.
func TestSnapshotOfAnotherLog(t *testing.T) {
	t.Parallel()
	envs, err := foldgen.Log(5, foldgen.Config{Sales: 4, MaxOrders: 8})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := testenv.Kafka(t, 2)
	produce(t, first, envs)
	if _, err := foldDir(t, first, snapshot.Options{Dir: dir}).Save(); err != nil {
		t.Fatal(err)
	}
	second := testenv.Kafka(t, 2)
	produce(t, second, envs[:len(envs)/4])
	var warnings []string
	res := foldDir(t, second, snapshot.Options{Dir: dir, Warn: func(w string) { warnings = append(warnings, w) }})
	if res.From != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "ends at") {
		t.Fatalf("from %+v, warnings %q; want the snapshot ignored", res.From, warnings)
	}
	if got, want := whole(t, res), fullFold(t, second); got != want {
		t.Fatalf("fold differs from the full fold")
	}
}

// TestFreshIgnoresSnapshots: Fresh folds from the beginning; Close removes the
// unsaved file and nothing saved.
func TestFreshIgnoresSnapshots(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t, 2)
	envs, err := foldgen.Log(9, foldgen.Config{Sales: 3, MaxOrders: 5})
	if err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, envs)
	dir := t.TempDir()
	path, err := foldDir(t, brokers, snapshot.Options{Dir: dir}).Save()
	if err != nil {
		t.Fatal(err)
	}
	res := foldDir(t, brokers, snapshot.Options{Dir: dir, Fresh: true})
	if res.From != nil || res.Stats.Records != int64(len(envs)) {
		t.Fatalf("fresh fold started from %+v after %d records", res.From, res.Stats.Records)
	}
	res.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("saved snapshot gone: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".writing-*")); len(left) != 0 {
		t.Errorf("unsaved files left: %v", left)
	}
}
