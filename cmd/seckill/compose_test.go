package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestComposeNeedsSecret (issue 15, item 7): compose.yaml once fell back to a
// published JWT secret, so a stack started without one accepted admin tokens
// anyone could mint. Every mention of the secret must now be a required
// variable (${SECKILL_JWT_SECRET:?...}: compose refuses to start without
// it), and no admin listener may be published on the host.
func TestComposeNeedsSecret(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	required := regexp.MustCompile(`^\s*SECKILL_JWT_SECRET:\s*"?\$\{SECKILL_JWT_SECRET:\?[^}]+\}"?\s*$`)
	found := 0
	for i, line := range strings.Split(string(b), "\n") {
		code, _, _ := strings.Cut(line, "#")
		if strings.Contains(code, "ports:") && strings.Contains(code, "6060") {
			t.Errorf("compose.yaml:%d publishes the admin listener", i+1)
		}
		if !strings.Contains(code, "SECKILL_JWT_SECRET") {
			continue
		}
		found++
		if !required.MatchString(line) {
			t.Errorf("compose.yaml:%d: %q does not require the secret (want ${SECKILL_JWT_SECRET:?message})", i+1, line)
		}
		if strings.Contains(code, ":-") || strings.Contains(code, "-}") {
			t.Errorf("compose.yaml:%d: %q has a fallback", i+1, line)
		}
	}
	if found == 0 {
		t.Fatal("compose.yaml never sets SECKILL_JWT_SECRET")
	}
	if strings.Contains(string(b), "change-me") {
		t.Error("compose.yaml still holds a placeholder secret")
	}
}

// TestComposeRedisSentinels (issue 14): the stack's Redis URL is a Sentinel
// URL that openRedis reads, naming Sentinel services the file defines, each
// monitoring the master name of the URL; a replica follows the primary.
func TestComposeRedisSentinels(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	m := regexp.MustCompile(`(?m)^\s*SECKILL_REDIS_URL:\s*(\S+)\s*$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("compose.yaml sets no SECKILL_REDIS_URL")
	}
	opt, err := parseSentinelURL(m[1])
	if err != nil {
		t.Fatalf("SECKILL_REDIS_URL %s: %v", m[1], err)
	}
	if len(opt.SentinelAddrs) < 3 {
		t.Errorf("%d Sentinels; a quorum that survives one loss needs 3", len(opt.SentinelAddrs))
	}
	for _, addr := range opt.SentinelAddrs {
		host, _, _ := strings.Cut(addr, ":")
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(host) + `:`).MatchString(text) {
			t.Errorf("Sentinel %s is not a service of compose.yaml", host)
		}
	}
	if !strings.Contains(text, "sentinel monitor "+opt.MasterName+" redis 6379 2") {
		t.Errorf("no Sentinel monitors %q at redis:6379 with quorum 2", opt.MasterName)
	}
	if !strings.Contains(text, `"--replicaof", "redis", "6379"`) {
		t.Error("no replica of redis:6379")
	}
}
