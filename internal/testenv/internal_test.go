package testenv

import (
	"strings"
	"testing"
)

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	a := databaseName("TestPurchase/sold out: 409 " + strings.Repeat("x", 100))
	b := databaseName("TestPurchase/sold out: 409 " + strings.Repeat("x", 100))
	if a == b {
		t.Errorf("two calls gave the same name %q", a)
	}
	if len(a) > 63 {
		t.Errorf("%q is longer than an identifier may be", a)
	}
	if !strings.HasPrefix(a, "t_testpurchase_sold_out__409_") {
		t.Errorf("%q does not tell the test", a)
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u:p@db:5432/postgres?sslmode=disable", "postgres://u:p@db:5432/t_1?sslmode=disable"},
		{"postgresql://u@db", "postgresql://u@db/t_1"},
		{"host=db user=u dbname=postgres", "host=db user=u dbname=postgres dbname=t_1"},
	} {
		got, err := withDatabase(tc.dsn, "t_1")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
		}
	}
}
