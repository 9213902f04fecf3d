# prescale: see README.md. Every target works from a clean clone.
GO       ?= go
FUZZTIME ?= 60s
BENCH    ?= .

.PHONY: all build test unit check bench fuzz clean

all: build

## build: the prescale binary, into bin/
build:
	$(GO) build -o bin/prescale ./cmd/prescale

## test: every test the project has
test: unit

## unit: hermetic tests (no cluster, no Prometheus), including the fuzz seeds
unit:
	$(GO) test -count=1 ./...

## check: formatting, vet, and the purity guard on policy/ and forecast/
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	./hack/check-purity.sh

## bench: the benchmarks, 5 runs each (compare with benchstat)
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count 5 ./...

## fuzz: each fuzz target for FUZZTIME
fuzz:
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzDecide$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10x
	$(GO) test ./forecast -run '^$$' -fuzz '^FuzzForecast$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10x

clean:
	rm -rf bin
