package domain_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seckill/seckill/domain"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus/current from today's decoding")

// TestCorpus decodes every envelope ever recorded (testdata/corpus, written by
// the gate: go test ./commands -run TestRecordCorpus -record-corpus) and
// compares the result, upcast to the current schema, with the golden file in
// testdata/corpus/current. The log is kept forever, so a change to an event
// type, a schema or an upcaster that breaks an old event, or silently changes
// what it decodes to, fails here.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no corpus in testdata/corpus")
	}
	covered := map[string]bool{} // "Type.vN"
	envelopes := map[int]bool{}  // envelope versions recorded
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			recorded, err := domain.DecodeEnvelope(raw)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%s.v%d", recorded.Type, recorded.Version); !strings.HasPrefix(name+".", want+".") {
				t.Fatalf("file %s holds a %s", name, want)
			}
			covered[fmt.Sprintf("%s.v%d", recorded.Type, recorded.Version)] = true
			var ver struct {
				Envelope int `json:"envelope"`
			}
			if err := json.Unmarshal(raw, &ver); err != nil {
				t.Fatal(err)
			}
			ver.Envelope = max(ver.Envelope, 1)
			envelopes[ver.Envelope] = true
			if ver.Envelope > 1 && !strings.Contains(name+".", fmt.Sprintf(".e%d.", ver.Envelope)) {
				t.Fatalf("file %s holds an envelope v%d; its name must say .e%d", name, ver.Envelope, ver.Envelope)
			}

			env, ev, err := domain.Decode(raw)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			cur, _ := domain.CurrentVersion(recorded.Type)
			if env.Version != cur || ev.EventType() != recorded.Type {
				t.Fatalf("decoded %s v%d, want %s v%d", ev.EventType(), env.Version, recorded.Type, cur)
			}
			if ev.AggregateID() != recorded.AggregateID || env.ID != domain.EventID(recorded.AggregateID, recorded.Type) {
				t.Errorf("decoded aggregate %s, id %s; envelope says %s, %s", ev.AggregateID(), env.ID, recorded.AggregateID, recorded.ID)
			}
			// What the event means today: its current payload, re-encoded
			// from the decoded value, so a field that went missing shows.
			var view any = ev
			if ver.Envelope > 1 {
				// Since envelope v2 the metadata is part of what an event
				// says, and every command the recorder drove set it.
				if env.Metadata.CorrelationID == "" || env.Metadata.CausationID == "" {
					t.Errorf("%s: recorded without correlation or causation: %+v", name, env.Metadata)
				}
				view = struct {
					Metadata domain.Metadata `json:"metadata"`
					Event    domain.Event    `json:"event"`
				}{env.Metadata, ev}
			}
			if env.EnvelopeVersion != domain.CurrentEnvelopeVersion {
				t.Errorf("decoded envelope v%d, want v%d", env.EnvelopeVersion, domain.CurrentEnvelopeVersion)
			}
			got, err := json.MarshalIndent(view, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata/corpus/current", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (a new corpus file? run go test ./domain -run TestCorpus -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s decodes to\n%s\nwant (%s)\n%s", name, got, golden, want)
			}
		})
	}
	for v := 1; v <= domain.CurrentEnvelopeVersion; v++ {
		if !envelopes[v] {
			t.Errorf("no envelope v%d in testdata/corpus (record it: go test ./commands -run TestRecordCorpus -record-corpus)", v)
		}
	}
	// Every version of every type must be in the corpus: an upcaster no
	// recorded event goes through is an untested one.
	for _, typ := range domain.EventTypes() {
		cur, _ := domain.CurrentVersion(typ)
		for v := 1; v <= cur; v++ {
			if k := fmt.Sprintf("%s.v%d", typ, v); !covered[k] {
				t.Errorf("no %s in testdata/corpus (record it: go test ./commands -run TestRecordCorpus -record-corpus)", k)
			}
		}
	}
}
