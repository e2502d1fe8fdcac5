package domain_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/seckill/seckill/internal/codecgen"
)

// TestCodecGenerated fails when codec_gen.go is not what the generator makes
// of today's event structs: a field was added, renamed or retagged without
// `go generate ./domain`.
func TestCodecGenerated(t *testing.T) {
	want, err := codecgen.Generate(".")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(codecgen.Output)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("domain/%s is stale: run go generate ./domain", codecgen.Output)
	}
}
