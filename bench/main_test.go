package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKeptSections(t *testing.T) {
	for _, tc := range []struct{ name, old, want string }{
		{"no file", "", ""},
		{"report only", "# Benchmarks\n\n| a | b |\n", ""},
		{"two sections", "# Benchmarks\nold report\n<!-- a: begin -->\n## A\nx\n<!-- a: end -->\n\n<!-- bench-log: begin -->\n## L\n<!-- bench-log: end -->\n",
			"\n<!-- a: begin -->\n## A\nx\n<!-- a: end -->\n\n<!-- bench-log: begin -->\n## L\n<!-- bench-log: end -->\n"},
		{"unterminated section dropped", "<!-- a: begin -->\nhalf\n", ""},
		{"other comments ignored", "<!-- a note -->\n<!-- b: begin -->y<!-- b: end -->", "\n<!-- b: begin -->y<!-- b: end -->\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
			if tc.old != "" {
				if err := os.WriteFile(path, []byte(tc.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := keptSections(path); got != tc.want {
				t.Errorf("keptSections = %q, want %q", got, tc.want)
			}
		})
	}
}
