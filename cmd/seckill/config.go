package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	fs.StringVar(&e.Data, "data", envOr(c, "SECKILL_DATA", ".seckill"), "data folder of `seckill dev` (env SECKILL_DATA)")
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
	if e.RedisURL == "" {
		e.RedisURL = st.RedisURL
	}
	if e.DatabaseURL == "" {
		e.DatabaseURL = st.DatabaseURL
	}
	if e.Brokers == "" {
		e.Brokers = st.Brokers
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
