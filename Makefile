# Caracal: `make run` runs the whole system on embedded defaults,
# `make test` runs every test. Nothing else to install but Go (and Python 3
# for the independent Parquet checks, set up by scripts/python.sh).
GO      ?= go
BIN     := bin/caracal
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION) -X main.dateBuilt=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
.PHONY: all build run test unit yaml-test lint bench bench-lake chaos fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/caracal

run: build
	@echo "Caracal starting on embedded defaults:"
	@echo "  webhook  POST http://127.0.0.1:8000/http/demo   (auth: none; try: curl -X POST --data @testdata/cloudtrail/root_console_login.json http://127.0.0.1:8000/http/demo)"
	@echo "  status   http://127.0.0.1:8000/"
	@echo "  metrics  http://127.0.0.1:4195/metrics"
	@echo "  lake     ./data/lake   broker log ./data/broker   (Ctrl-C flushes and stops)"
	./$(BIN) run

test: build unit yaml-test

# Tests read the lake back with pyarrow (an independent Parquet reader):
# scripts/python.sh makes a cached venv with it unless CARACAL_PYTHON is set.
unit:
	CARACAL_PYTHON="$${CARACAL_PYTHON:-$$(bash scripts/python.sh --path)}" $(GO) test -count=1 -timeout 25m ./...

# The shipped rules' and schemas' own tests, through the CLI users run (the
# rules' lookup() served from the shipped lookup tables, as in the pipeline).
yaml-test: build
	./$(BIN) rules test --lookups lookups rules
	./$(BIN) schemas test schemas

lint: build
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt: run gofmt -w on the files above"; exit 1)
	$(GO) vet ./...
	./$(BIN) lint config.yaml pipelines/*.yaml

# BENCH_SECONDS (default 60) per run; BENCH_BASELINE=0 skips Redpanda Connect;
# BENCH_FLOOR=1 also measures the stages with their work taken out.
bench: build
	$(GO) run ./tools/bench

# Lake writer and `caracal search` over LAKEBENCH_EVENTS (default 1M, ~1.1 GB of JSON).
bench-lake:
	$(GO) run ./tools/lakebench

# Needs Java 17 (scripts/kafka.sh fetches Kafka) and Python with pyarrow.
chaos: build
	CARACAL_PYTHON="$${CARACAL_PYTHON:-$$(bash scripts/python.sh --path)}" $(GO) run ./tools/chaos

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
