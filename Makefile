# prescale: see README.md. Every target works from a clean clone.
GO       ?= go
FUZZTIME ?= 60s
BENCH    ?= .

.PHONY: all build image image-docker test unit e2e check bench bench-soak fuzz clean benchmarks-doc benchmarks-zero benchmarks-loo benchmarks-nodes test-e2e-backtest

all: build

## build: the prescale binary, into bin/
build:
	$(GO) build -o bin/prescale ./cmd/prescale

## image: the container image, with no Docker engine and no registry: the static binary, a
## CA bundle and distroless' nonroot user (65532) in one layer, written as an image archive
## (IMAGE_ARCHIVE) that `podman load -i` or `docker load -i` reads (tools/image; the same
## entrypoint, user, port and files as the Dockerfile, which its test checks)
IMAGE         ?= prescale:dev
IMAGE_ARCHIVE ?= bin/prescale-image.tar
image:
	@mkdir -p bin/image
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/image/prescale ./cmd/prescale
	cd tools/image && $(GO) run . -binary $(CURDIR)/bin/image/prescale -tag $(IMAGE) -out $(abspath $(IMAGE_ARCHIVE))

## image-docker: the same image from the Dockerfile, for machines with a Docker engine and a
## registry to pull the Go and distroless images from
DOCKER ?= docker
image-docker:
	@$(DOCKER) build -t $(IMAGE) . || { echo "make image-docker: '$(DOCKER) build' failed; without a Docker engine, use make image" >&2; exit 1; }

include sandbox.mk

## test: every test the project has: the hermetic ones, then every end-to-end test against
## the real control plane and Prometheus (builds the pinned tools when missing)
test: unit e2e

## e2e: the end-to-end tests (build tag e2e), one package at a time: the tests' own
## Prometheus harness (internal/testutil/promtest), the sandbox, the
## controller on the sandbox, the external metrics API with a real HPA and the HPA parity
## test (its report: PARITY_REPORT), the Prometheus source, the backtest's Prometheus
## reader, each shipped example against the simulator in its server's mode (sandbox/examples),
## and deploy/'s manifests and chart on the real API server. Beside them, at the
## same time, the tests that mostly wait (E2E_SIDE: their output follows theirs): the demo's
## (its own sandbox, a real HPA beside prescale, on its 10x clock), then the controller's
## beside Karpenter (E2E_SIDE_RUN in ./scaler/e2e: each its own sandbox, waiting for nodes
## that boot for a minute)
E2E_PKGS ?= ./internal/... ./sandbox ./sandbox/sim ./sandbox/examples ./scaler/... ./prom/... ./backtest/... ./cmd/... ./deploy/...
E2E_SIDE_PKGS ?= ./sandbox/demo
E2E_SIDE_RUN ?= BesideKarpenter
PARITY_REPORT ?= $(CURDIR)/.state/parity.txt
E2E_ENV = PRESCALE_SANDBOX_BIN=$(SANDBOX_BIN) PRESCALE_TOOLS_BIN=$(SANDBOX_BIN) PARITY_REPORT=$(PARITY_REPORT)
e2e: tools sandbox-cmds
	@mkdir -p .state; side=.state/e2e-side.log; \
	( $(E2E_ENV) $(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) $(E2E_SIDE_PKGS); a=$$?; \
	  $(E2E_ENV) $(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) -run '$(E2E_SIDE_RUN)' ./scaler/e2e; b=$$?; \
	  exit $$((a | b)) ) >$$side 2>&1 & pid=$$!; \
	$(E2E_ENV) $(GO) test -tags e2e -count=1 -p 1 -timeout $(E2E_TIMEOUT) -skip '$(E2E_SIDE_RUN)' $(E2E_PKGS); main=$$?; \
	wait $$pid; sidest=$$?; cat $$side; \
	if [ $$main -ne 0 ] || [ $$sidest -ne 0 ]; then exit 1; fi

## unit: hermetic tests (no cluster, no Prometheus), including the fuzz seeds; then the
## controller's again under the race detector (about 10 s more): its ticks, its HTTP handlers
## (/status read during ticks) and its background writes share state
unit:
	$(GO) test -count=1 ./...
	cd tools/image && $(GO) test -count=1 ./...
	$(GO) test -race -count=1 ./scaler/

## check: formatting, vet, staticcheck, and the purity guard on policy/, forecast/, engine/ and alloc/.
## staticcheck is the version tools/staticcheck pins, built once into the tools cache
## (hack/staticcheck.sh); it checks the default and the e2e build in one run (-matrix), so
## that code only the e2e tests use is not reported unused
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	printf 'default:\ne2e: -tags=e2e\n' | ./hack/staticcheck.sh -matrix ./...
	./hack/check-purity.sh

## bench: the benchmarks, 5 runs each (compare with benchstat)
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count 5 ./...

## bench-soak: prescale with SOAK_POLICIES (1000) policies sharing one GPU pool on the
## sandbox, every one wanting more than the pool holds: per-tick wall and CPU time, RSS,
## Prometheus queries per tick, policies limited by the GPU allocation; every 10th policy has a
## forecast whose history loads (held 60 s by a proxy) through the surge
SOAK_POLICIES ?= 1000
bench-soak: tools
	E2E_NODES=12 E2E_GPUS_PER_NODE=100 SOAK_POLICIES=$(SOAK_POLICIES) PRESCALE_SANDBOX_BIN=$(SANDBOX_BIN) \
	  $(GO) test -tags e2e -count=1 -run '^$$' -bench '^BenchmarkSoak$$' -benchtime 1x -timeout 20m ./scaler/e2e/

## fuzz: each fuzz target for FUZZTIME
fuzz:
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzDecide$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10x
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzDecideScaleToZero$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10x
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzDuration$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10x
	$(GO) test ./forecast -run '^$$' -fuzz '^FuzzForecast$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10x
	$(GO) test ./alloc -run '^$$' -fuzz '^FuzzAllocate$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10x
	$(GO) test ./backtest -run '^$$' -fuzz '^FuzzReadTrace$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10x
	$(GO) test ./cmd/prescale -run '^$$' -fuzz '^FuzzBacktestFlags$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10x

## benchmarks-doc: regenerate docs/benchmarks.md and its plots from ../shared/traces
benchmarks-doc:
	./docs/benchmarks.sh

## benchmarks-loo: regenerate only the leave-one-out section of docs/benchmarks.md (the
## objective's constants scored on each trace left out; about 20 minutes on 2 cores)
benchmarks-loo:
	./docs/benchmarks-loo.sh

## benchmarks-zero: regenerate only the scale-to-zero section of docs/benchmarks.md
benchmarks-zero:
	./docs/benchmarks-zero.sh

## benchmarks-nodes: regenerate the node model's table in docs/capacity.md (hack/nodebench:
## every shared trace of a day or more, a 10-minute node lead, with and without buffers)
benchmarks-nodes:
	./docs/benchmarks-nodes.sh

## test-e2e-backtest: the backtest's Prometheus reader against a real Prometheus; needs
## PRESCALE_TOOLS_BIN, a directory holding the prometheus and promtool binaries
PRESCALE_TOOLS_BIN ?= $(CURDIR)/bin
test-e2e-backtest:
	PRESCALE_TOOLS_BIN=$(PRESCALE_TOOLS_BIN) $(GO) test -tags e2e -count=1 -run '^(TestPrometheusLoad|TestBacktestCommandPrometheus)$$' ./backtest ./cmd/prescale

clean:
	rm -rf bin
