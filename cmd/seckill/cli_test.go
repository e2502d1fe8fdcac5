package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seckill/seckill/internal/testenv"
)

// runCLI runs one command in-process with env as its whole environment.
func runCLI(ctx context.Context, env map[string]string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = run(ctx, args, func(k string) string { return env[k] }, &out, &errb)
	return out.String(), errb.String(), err
}

// TestHelpGoesToStdout: help that was asked for is printed on stdout and is
// not a failure; the usage after a mistake goes to stderr with exit 2.
func TestHelpGoesToStdout(t *testing.T) {
	ctx := context.Background()
	cmds := [][]string{{"gate", "restore"}, {"projections", "status"}, {"projections", "rebuild"}, {"gate"}, {"projections"}}
	for name := range subcommands() {
		if name != "gate" && name != "projections" {
			cmds = append(cmds, []string{name})
		}
	}
	for _, cmd := range cmds {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			out, errOut, err := runCLI(ctx, nil, append(cmd, "--help")...)
			if err != nil {
				t.Fatalf("--help: %v", err)
			}
			if !strings.Contains(out, "Usage: seckill") || errOut != "" {
				t.Errorf("--help: stdout %q, stderr %q; want the usage on stdout only", out, errOut)
			}
		})
	}
	out, errOut, err := runCLI(ctx, nil, "audit", "--no-such-flag")
	if exitCode(err) != 2 || out != "" || !strings.Contains(errOut, "no-such-flag") || !strings.Contains(errOut, "Usage: seckill audit") {
		t.Errorf("a bad flag: exit %d (%v), stdout %q, stderr %q; want exit 2 and error + usage on stderr", exitCode(err), err, out, errOut)
	}
	out, _, _ = runCLI(ctx, nil, "events", "--help")
	if !strings.Contains(out, "-data DIR") {
		t.Errorf("events --help does not name the --data placeholder DIR:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	out, _, err := runCLI(context.Background(), nil, "version")
	if err != nil || !strings.HasPrefix(out, "seckill ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

// TestStaleDevFileHint: addresses taken from a dev.json whose `seckill dev`
// is gone give a hint naming the file and its PID, up front and with the
// refused connection.
func TestStaleDevFileHint(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.ProcessState.Pid()
	dir := t.TempDir()
	st := devState{RedisURL: "redis://127.0.0.1:1/0", DatabaseURL: "postgres://x@127.0.0.1:2/x?connect_timeout=2",
		Brokers: "127.0.0.1:3", Topic: defaultTopic, PID: pid, StartedAt: time.Now().Add(-time.Hour)}
	if err := writeDevState(dir, st); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runCLI(context.Background(), nil, "migrate", "--data", dir)
	if err == nil {
		t.Fatal("migrate against a dead dev.json succeeded")
	}
	for _, want := range []string{"is `seckill dev` running?", filepath.Join(dir, "dev.json"), "PID " + strconv.Itoa(pid), "not running"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not warn %q", errOut, want)
		}
	}
	// Addresses given explicitly owe nothing to dev.json: no hint.
	_, _, err = runCLI(context.Background(), map[string]string{"SECKILL_DATABASE_URL": "postgres://x@127.0.0.1:4/x?connect_timeout=2"}, "migrate", "--data", dir)
	if err == nil || strings.Contains(err.Error(), "dev.json") {
		t.Errorf("explicit URL: %v; want a plain error", err)
	}
	_ = os.Remove(filepath.Join(dir, "dev.json"))
}

// TestAuditExitCodes: an audit that cannot run exits 2, not 1 (violations).
func TestAuditExitCodes(t *testing.T) {
	if _, _, err := runCLI(context.Background(), nil, "audit", "--skip", "nope", "--kafka-brokers", "127.0.0.1:1"); exitCode(err) != auditCouldNot {
		t.Errorf("audit with a bad flag value: exit %d (%v), want %d", exitCode(err), err, auditCouldNot)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _, err := runCLI(ctx, nil, "audit", "--skip", "gate,read-models", "--kafka-brokers", "127.0.0.1:1", "--data", t.TempDir())
	if exitCode(err) != auditCouldNot {
		t.Errorf("audit without a broker: exit %d (%v), want %d", exitCode(err), err, auditCouldNot)
	}
}

// TestStatusDoesNotMigrate: `projections status` is read-only: on a database
// no migration has touched it fails (saying so) and creates nothing.
func TestStatusDoesNotMigrate(t *testing.T) {
	dsn := testenv.Postgres(t)
	brokers := testenv.Kafka(t, 2)
	ctx := context.Background()
	out, _, err := runCLI(ctx, nil, "projections", "status", "--database-url", dsn, "--kafka-brokers", brokers[0], "--data", t.TempDir())
	if err != nil || !strings.Contains(out, "has the database been migrated?") {
		t.Errorf("status on an unmigrated database: %v\n%s\nwant the per-projection errors and a hint", err, out)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var tables int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("status created %d tables", tables)
	}
}
