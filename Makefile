# The entry points of README.md. `make test` and `make dev` first install what
# a fresh Debian machine lacks (see deps); everything else is plain go tooling.

GO ?= go
GOFMT := $(shell $(GO) env GOROOT)/bin/gofmt
# apt needs root. CI runs as root, often without sudo installed, so sudo only
# when we are not root already.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Extra arguments for `make dev`, e.g. make dev ARGS='--data /tmp/sk'.
ARGS ?=

.PHONY: deps test test-short dev build lint golangci-lint bench bench-quick bench-log bench-viewers fuzz cluster-test cluster-bench faults

# deps installs the servers that tests and `seckill dev` start (redis-server,
# PostgreSQL; Debian keeps the Postgres binaries in /usr/lib/postgresql/*/bin,
# off PATH, which is where internal/localsvc looks too), the C compiler
# that -race needs, Chromium and a Chinese font for the sale page's browser
# test (it runs in zh-CN too), nginx for the edge-cache tests and benchmark
# (internal/nginx runs deploy/nginx.conf), then downloads the Go modules.
deps:
	@pkgs=""; \
	command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || pkgs="$$pkgs redis-server"; \
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || pkgs="$$pkgs postgresql"; \
	command -v "$$($(GO) env CC)" >/dev/null 2>&1 || pkgs="$$pkgs gcc libc6-dev"; \
	command -v chromium >/dev/null 2>&1 || pkgs="$$pkgs chromium fonts-liberation"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || pkgs="$$pkgs fonts-wqy-zenhei"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || pkgs="$$pkgs nginx"; \
	if [ -n "$$pkgs" ]; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "missing:$$pkgs; install them with your package manager" >&2; exit 1; \
		fi; \
		echo "installing$$pkgs"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$pkgs; \
	fi
	$(GO) mod download

# test runs everything against real Redis and Postgres started by the tests
# (internal/testenv) and the in-process Kafka broker.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

# test-short is the quick loop: no race detector, and tests that check
# testing.Short() leave out their long runs.
test-short: deps
	$(GO) test -short -count=1 ./...

# cluster-test runs the long versions of the scale-out tests: the whole
# system on a 3-master Redis Cluster, and seckill as separate processes
# (broker, 3 API nodes, projectors, two relays, a sweeper) on that cluster,
# 4 sales x 3000 shoppers, with a projector killed mid-sale (a few minutes).
cluster-test: deps
	SECKILL_LONG=1 $(GO) test -count=1 -timeout 20m -v -run 'TestEndToEndSaleOnRedisCluster|TestMultiProcessDeployment|TestRedisCluster' ./cmd/seckill ./internal/testenv

# cluster-bench measures purchase throughput through API nodes on one
# redis-server and on a 3-master Redis Cluster, in one run (README).
cluster-bench: deps
	SECKILL_CLUSTER_BENCH=1 $(GO) test -count=1 -timeout 30m -v -run 'TestClusterThroughput' ./cmd/seckill

# faults runs the long versions of the fault-injection suite (issue 8,
# docs/durability.md): kill -9 of an API node, the relay, the broker and a
# projector mid-run; Redis restarted from its AOF and lost entirely; the
# Redis primary killed with a replica and Sentinels (and a cluster master
# with its replica) failing over, a replica frozen and killed; Postgres
# down; duplicate delivery; sweepers racing payers; hostile clients; SIGTERM;
# and what appendfsync always and the replica acknowledgement cost. Each
# scenario ends with `seckill audit` and logs "faults: NAME: accepted N, in log N, in read model N, audit ...".
# The short versions run in `make test` (go test ./...).
faults: deps
	SECKILL_LONG=1 $(GO) test -count=1 -timeout 20m -v -run '^TestFault' ./cmd/seckill

# dev builds bin/seckill (the binary the README tour uses) and runs it; not
# `go run`, which turns the Ctrl-C that stops a clean shutdown into exit 1.
dev: deps build
	./bin/seckill dev $(ARGS)

# VERSION is what `seckill version` and seckill_build_info report; the VCS
# revision is stamped by the Go toolchain on its own.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
build:
	$(GO) build -ldflags "-X github.com/seckill/seckill/internal/buildinfo.version=$(VERSION)" -o bin/seckill ./cmd/seckill

# lint runs golangci-lint with .golangci.yml (gofmt, vet, staticcheck,
# unused, errcheck, complexity and the 100-line limit on functions outside
# tests) and keeps domain free of our other packages (DESIGN.md: dependencies
# point inward). CI runs it (.ci/run).
lint: golangci-lint
	$(GOLANGCI_LINT) run ./...
	@bad="$$($(GO) list -deps ./domain | grep '^github.com/seckill/seckill/' | grep -v '^github.com/seckill/seckill/domain$$' || true)"; \
	if [ -n "$$bad" ]; then echo "domain imports our packages:"; echo "$$bad"; exit 1; fi

# golangci-lint installs the pinned GOLANGCI_LINT_VERSION into GOBIN unless it
# is there already: go install builds it from the Go module proxy (a few
# minutes the first time on a 2-core machine, nothing after).
GOLANGCI_LINT_VERSION := v2.15.0
GOBIN_DIR := $(or $(shell $(GO) env GOBIN),$(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin)
GOLANGCI_LINT := $(GOBIN_DIR)/golangci-lint
golangci-lint:
	@$(GOLANGCI_LINT) version 2>/dev/null | grep -q 'version $(patsubst v%,%,$(GOLANGCI_LINT_VERSION)) ' || { \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(GOBIN_DIR)"; \
		GOBIN=$(GOBIN_DIR) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); }

# bench measures the system and its ceilings in one run on this machine and
# writes BENCHMARKS.md (3-4 minutes, the million-attempt sale included).
bench: deps
	$(GO) run ./bench

# bench-log measures the log tools (events lookups and export, gate restore,
# audit, projection rebuild) on a year of daily sales, BENCH_LOG_EVENTS events
# written straight into the embedded broker, each tool its own process (time
# and peak RSS); it rewrites its own section of BENCHMARKS.md. 10M events take
# a quarter of an hour and ~15 GB of memory at peak (broker + restore).
BENCH_LOG_EVENTS ?= 10000000
bench-log: deps
	$(GO) run ./bench/logtools -events $(BENCH_LOG_EVENTS)

# bench-viewers measures what reaches the API when N viewers poll a sale's
# status every 2 s, straight and through deploy/nginx.conf's cache (about a
# minute); it rewrites its own section of BENCHMARKS.md.
bench-viewers: deps
	SECKILL_VIEWERS_BENCH=1 $(GO) test -count=1 -timeout 10m -v -run 'TestViewersThroughCache' ./cmd/seckill

# bench-quick is a smoke run of the same phases with small counts; it writes nothing.
bench-quick: deps
	$(GO) run ./bench -quick

# fuzz runs every fuzz target for FUZZTIME each (go test runs one target per
# invocation). A crash is saved under testdata/fuzz and becomes a regression
# test that plain `go test` runs from then on. FUZZTIME is a count of
# executions, not a duration: Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" when a -fuzztime duration ends
# while a starved worker is mid-call (golang/go#75804, fixed in Go 1.27);
# a count has no deadline to race. 50000 runs the slowest target (the
# signature check) for about 10 s here.
FUZZTIME ?= 50000x
fuzz:
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done
