package codecgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// generate runs Generate over one file of package domain with src.
func generate(t *testing.T, src string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	src = "package domain\n\nimport \"time\"\n\nvar _ time.Time\n\nconst TypeCreated = \"Created\"\n\n" + src
	if err := os.WriteFile(filepath.Join(dir, "events.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Generate(dir)
	return string(out), err
}

// TestEmbedding: structs embedded at any depth are written in place, in the
// order encoding/json writes them, and read back through promoted names.
func TestEmbedding(t *testing.T) {
	out, err := generate(t, `
type Terms struct {
	Name  string `+"`json:\"name\"`"+`
	Stock int64  `+"`json:\"stock\"`"+`
}

type Extras struct {
	Token bool `+"`json:\"token,omitempty\"`"+`
}

type Spec struct {
	Terms
	Extras
	Shards int64 `+"`json:\"shards,omitempty\"`"+`
}

type Created struct {
	ID string `+"`json:\"id\"`"+`
	Spec
}

func (Created) EventType() string { return TypeCreated }
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"`{\"id\":`", "`,\"name\":`", "`,\"stock\":`", "`,\"token\":`", "`,\"shards\":`"}
	app := out[strings.Index(out, "func (e Created) appendJSON"):]
	last := -1
	for _, key := range want {
		i := strings.Index(app, key)
		if i < 0 || i < last {
			t.Fatalf("appender: %s missing or out of order:\n%s", key, app)
		}
		last = i
	}
	for _, sel := range []string{"e.Name", "e.Stock", "e.Token", "e.Shards"} {
		if !strings.Contains(out, sel+" = r.") {
			t.Errorf("reader does not set %s:\n%s", sel, out)
		}
	}
}

// TestRefused: what the generated codec would get wrong is an error, not
// a codec that differs from encoding/json.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"name twice through embedding", `
type Terms struct {
	ID string ` + "`json:\"id\"`" + `
}
type Created struct {
	ID string ` + "`json:\"id\"`" + `
	Terms
}
func (Created) EventType() string { return TypeCreated }`, `both have the JSON name "id"`},
		{"tagged embedding", `
type Terms struct {
	Name string ` + "`json:\"name\"`" + `
}
type Created struct {
	ID    string ` + "`json:\"id\"`" + `
	Terms ` + "`json:\"terms\"`" + `
}
func (Created) EventType() string { return TypeCreated }`, "only untagged structs"},
		{"unsupported type", `
type Created struct {
	ID string ` + "`json:\"id\"`" + `
	N  int
}
func (Created) EventType() string { return TypeCreated }`, "type int is not supported"},
		{"omitempty time", `
type Created struct {
	ID string    ` + "`json:\"id\"`" + `
	At time.Time ` + "`json:\"at,omitempty\"`" + `
}
func (Created) EventType() string { return TypeCreated }`, "omits nothing"},
		{"optional first field", `
type Created struct {
	ID string ` + "`json:\"id,omitempty\"`" + `
}
func (Created) EventType() string { return TypeCreated }`, "first field must be present"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := generate(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
