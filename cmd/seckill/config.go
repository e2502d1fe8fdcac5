package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// endpoints are the services a command talks to. Explicit flags win, then the
// environment, then what a running `seckill dev` wrote into the data folder.
type endpoints struct {
	Data        string
	RedisURL    string
	DatabaseURL string
	Brokers     string
	Topic       string
	JWTSecret   string
	dev         *devUse // where fromDev notes what it used; nil in tests that build endpoints by hand
}

// devState is what `seckill dev` writes to DATA/dev.json so that the other
// commands find its services without flags.
type devState struct {
	RedisURL    string `json:"redis_url"`
	DatabaseURL string `json:"database_url"`
	Brokers     string `json:"kafka_brokers"`
	Topic       string `json:"topic"`
	HTTPAddr    string `json:"http_addr"`
	PID         int    `json:"pid"`
	// StartedAt is when that `seckill dev` started, for the hint a stale
	// file gives (absent in files of older builds).
	StartedAt time.Time `json:"started_at,omitzero"`
}

const defaultTopic = "seckill.events"

func envOr(c cli, key, def string) string {
	if v := c.getenv(key); v != "" {
		return v
	}
	return def
}

// bind registers the endpoint flags on fs, with env defaults.
func (e *endpoints) bind(c cli, fs *flag.FlagSet) {
	e.dev = c.dev
	// The back-quoted word is the placeholder the help prints: -data DIR.
	fs.StringVar(&e.Data, "data", envOr(c, "SECKILL_DATA", ".seckill"), "`DIR` where `seckill dev` keeps its data and dev.json, through which the other commands find its services (env SECKILL_DATA)")
	fs.StringVar(&e.RedisURL, "redis-url", c.getenv("SECKILL_REDIS_URL"), "Redis URL, e.g. redis://127.0.0.1:6379/0 (env SECKILL_REDIS_URL)")
	fs.StringVar(&e.DatabaseURL, "database-url", c.getenv("SECKILL_DATABASE_URL"), "Postgres URL (env SECKILL_DATABASE_URL)")
	fs.StringVar(&e.Brokers, "kafka-brokers", c.getenv("SECKILL_KAFKA_BROKERS"), "comma-separated Kafka brokers (env SECKILL_KAFKA_BROKERS)")
	fs.StringVar(&e.Topic, "topic", envOr(c, "SECKILL_TOPIC", defaultTopic), "Kafka topic of the event log (env SECKILL_TOPIC)")
	e.JWTSecret = c.getenv("SECKILL_JWT_SECRET")
}

// fromDev fills what flags and env left empty from DATA/dev.json.
func (e *endpoints) fromDev() {
	st, err := readDevState(e.Data)
	if err != nil {
		return
	}
	var used []string // the addresses taken from the file
	if e.RedisURL == "" {
		e.RedisURL, used = st.RedisURL, append(used, urlHost(st.RedisURL))
	}
	if e.DatabaseURL == "" {
		e.DatabaseURL, used = st.DatabaseURL, append(used, urlHost(st.DatabaseURL))
	}
	if e.Brokers == "" {
		e.Brokers, used = st.Brokers, append(used, e.brokerList()...)
	}
	if len(used) > 0 && e.dev != nil {
		e.dev.path, e.dev.state, e.dev.addrs = filepath.Join(e.Data, "dev.json"), &st, used
		if !alive(st.PID) && e.dev.warn != nil {
			// Say it now: a client may retry a dead address for a while
			// before it gives up with "connection refused".
			fmt.Fprintf(e.dev.warn, "seckill: warning: %s\n", e.dev.staleText())
		}
	}
	if e.JWTSecret == "" {
		if b, err := os.ReadFile(filepath.Join(e.Data, "jwt.secret")); err == nil {
			e.JWTSecret = strings.TrimSpace(string(b))
		}
	}
}

// need reports which of the named endpoints are still missing.
func (e *endpoints) need(redis, db, kafka, jwt bool) error {
	var missing []string
	if redis && e.RedisURL == "" {
		missing = append(missing, "--redis-url (SECKILL_REDIS_URL)")
	}
	if db && e.DatabaseURL == "" {
		missing = append(missing, "--database-url (SECKILL_DATABASE_URL)")
	}
	if kafka && e.Brokers == "" {
		missing = append(missing, "--kafka-brokers (SECKILL_KAFKA_BROKERS)")
	}
	if jwt && e.JWTSecret == "" {
		missing = append(missing, "SECKILL_JWT_SECRET")
	}
	if len(missing) > 0 {
		return usageError{fmt.Sprintf("missing %s; set them, or start `seckill dev --data %s` first", strings.Join(missing, ", "), e.Data)}
	}
	return nil
}

func (e *endpoints) brokerList() []string {
	var out []string
	for _, b := range strings.Split(e.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func readDevState(data string) (devState, error) {
	var st devState
	b, err := os.ReadFile(filepath.Join(data, "dev.json"))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func writeDevState(data string, st devState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(data, "dev.json"), b, 0o600)
}

// devSecret returns the JWT secret kept in the data folder, making one on first use.
func devSecret(data string) (string, error) {
	p := filepath.Join(data, "jwt.secret")
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s, os.WriteFile(p, []byte(s+"\n"), 0o600)
}

// devUse is the dev.json a command took endpoints from, if any.
type devUse struct {
	path  string
	state *devState
	addrs []string  // host:port of each service address taken from it
	warn  io.Writer // where a stale file is reported at once
}

// staleText says where the addresses came from and whether their writer lives.
func (d *devUse) staleText() string {
	st := d.state
	started := ""
	if !st.StartedAt.IsZero() {
		started = ", started " + st.StartedAt.Local().Format(time.DateTime)
	}
	state := "is not running any more: the file is stale"
	if alive(st.PID) {
		state = "is running but does not answer"
	}
	return fmt.Sprintf("is `seckill dev` running? the services' addresses came from %s, written by PID %d%s, which %s;"+
		" start `seckill dev --data %s`, or pass --redis-url, --database-url, --kafka-brokers", d.path, st.PID, started, state, filepath.Dir(d.path))
}

// explain adds a hint to err when a connection was refused at an address
// that came from dev.json: the file outlives a `seckill dev` that was killed,
// and "connection refused" alone does not say where the address came from.
func (d *devUse) explain(err error) error {
	if err == nil || d == nil || d.state == nil || !connRefused(err) {
		return err
	}
	if !slices.ContainsFunc(d.addrs, func(a string) bool { return a != "" && strings.Contains(err.Error(), a) }) {
		return err // refused somewhere the file did not name
	}
	return fmt.Errorf("%w\n(%s)", err, d.staleText())
}

// connRefused reports whether err is a refused TCP connection. Some clients
// (franz-go) flatten the dial error into text, hence the string test too.
func connRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused")
}

// envBoolOr is the boolean in env key (true/false/1/0 …), or def when the
// variable is unset or not a boolean.
func envBoolOr(c cli, key string, def bool) bool {
	b, err := strconv.ParseBool(c.getenv(key))
	if err != nil {
		return def
	}
	return b
}

// urlHost is the host:port of a service URL, "" if it has none.
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
