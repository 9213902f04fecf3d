# sandbox.mk: the local sandbox (control plane, kwok GPU nodes, Prometheus, simulated
# service), its pinned tools, the demo and the end-to-end tests. Included by Makefile.
#
#   make tools          build the pinned tools into a cache outside the clone, link them into bin/
#   make demo           build what is missing, run the demo (a real HPA beside prescale), tear down
#                       (KEEP=1 keeps the sandbox up; TRACE=file.csv replays a per-minute trace)
#   make sandbox-up     start the sandbox in .state/sandbox and print its environment
#   make sandbox-down   stop it
#   make test-e2e       the sandbox's end-to-end tests (go test -tags e2e ./sandbox/...)

SANDBOX_BIN   ?= $(CURDIR)/bin
SANDBOX_STATE ?= $(CURDIR)/.state/sandbox
SANDBOX_GO    ?= go
E2E_TIMEOUT   ?= 40m

.PHONY: tools sandbox-cmds sandbox-up sandbox-down sandbox-env demo test-e2e

tools:
	@BINDIR=$(SANDBOX_BIN) bash tools/build.sh

sandbox-cmds:
	@mkdir -p $(SANDBOX_BIN)
	$(SANDBOX_GO) build -o $(SANDBOX_BIN)/ ./cmd/prescale-sandbox ./cmd/prescale-sim

sandbox-up: tools sandbox-cmds
	@$(SANDBOX_BIN)/prescale-sandbox up --bin-dir=$(SANDBOX_BIN) --state-dir=$(SANDBOX_STATE)

sandbox-down:
	@if [ -x $(SANDBOX_BIN)/prescale-sandbox ]; then $(SANDBOX_BIN)/prescale-sandbox down --state-dir=$(SANDBOX_STATE); fi

sandbox-env:
	@$(SANDBOX_BIN)/prescale-sandbox env --state-dir=$(SANDBOX_STATE)

demo: tools sandbox-cmds build
	@$(SANDBOX_BIN)/prescale-sandbox demo --bin-dir=$(SANDBOX_BIN) --state-dir=$(SANDBOX_STATE) $(if $(filter 1,$(KEEP)),--keep,) $(if $(TRACE),--trace=$(TRACE),) $(if $(filter 1,$(KARPENTER)),--karpenter,)

test-e2e: tools
	PRESCALE_SANDBOX_BIN=$(SANDBOX_BIN) $(SANDBOX_GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) ./sandbox/...
