# syncd — make help lists the targets.
.DEFAULT_GOAL := help
GO ?= go
STATICCHECK_VERSION := v0.7.0
BIN := bin/syncd
PKGS := ./...

.PHONY: help build test race bench fuzz lint demo soak bench-compare

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/syncd
	$(GO) build -o $(BIN) ./cmd/syncd

test: ## run every test (what CI runs; network-namespace tests need root)
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 15m $(PKGS)

race: ## run the tests with the race detector
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

bench: ## run the Go benchmarks (figures for the closing notes)
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m $(PKGS)

fuzz: ## short smoke run of every fuzz target (FUZZTIME=10s each)
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-10s} $$pkg || exit 1; \
	  done; \
	done

lint: ## gofmt, go vet, staticcheck (pinned)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

soak: ## the model-based convergence test with many more sequences (SOAK=1000)
	SYNCD_SOAK=$${SOAK:-1000} $(GO) test -count=1 -run 'TestModel' -timeout 6h -v ./peer -rapid.nofailfile

bench-compare: ## syncd vs Syncthing vs rsync vs cp, side by side (root; QUICK=1 for 256 MiB)
	$(GO) run ./cmd/syncbench $(if $(QUICK),--quick) --out $${OUT:-bench-compare.json}

demo: build ## two local devices on 127.0.0.1 syncing a sample folder
	@BIN=$(BIN) ./cmd/syncd/demo.sh
