# dmpagent — `make demo` and `make test` do all set-up on a fresh Debian/Ubuntu
# machine: they install the system packages (as root), start a pcscd with the
# vsmartcard-vpcd driver when none runs, and stop only what they started.

GO          ?= go
BIN         := bin/dmpagent
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS     := -X github.com/dmpagent/dmpagent/cli.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
SCRIPTS     := testcards/scripts
# Fuzz targets run briefly in `make fuzz`; `go test` replays their corpora always.
FUZZTIME    ?= 15s

# make test's real-stack tests include 1,000 card insert/remove cycles
# (cardreader), about 7 minutes because pcscd polls vpcd every 400 ms.
TESTTIMEOUT ?= 30m

.PHONY: all build cross deps test demo bench lint fuzz clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/dmpagent

# Windows: cgo through mingw-w64, for miekg/pkcs11 (the Cryptolib CPS and
# OpenSC modules); scard and piv-go call winscard.dll without cgo. Every
# package is compiled for Windows, not only what cmd/dmpagent imports today.
# darwin needs cgo with clang and the macOS SDK (PCSC.framework): build it
# on a Mac (`make build` there).
WINDOWS_ENV := GOOS=windows GOARCH=amd64 CGO_ENABLED=1 CC=x86_64-w64-mingw32-gcc

cross:
	@bash $(SCRIPTS)/deps.sh cross
	$(WINDOWS_ENV) $(GO) build ./...
	$(WINDOWS_ENV) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN).exe ./cmd/dmpagent
	@case " $$($(WINDOWS_ENV) $(GO) list -f '{{join .GoFiles " "}}' ./pkcs11) " in \
	  *" module.go "*) ;; *) echo "cross: pkcs11 built without its PKCS#11 module backend" >&2; exit 1;; esac
	@file $(BIN).exe

deps:
	@bash $(SCRIPTS)/deps.sh

# Unit tests, then the real-stack tests (pcscd + vpcd + emulated cards; they
# fail rather than skip here), then real tools against `dmpagent sim`. One
# package at a time (-p 1): the real-stack tests of every package share
# vpcd's two readers, so running packages side by side only makes them wait.
test: deps build
	bash $(SCRIPTS)/with-pcscd.sh bash -c '\
	  DMPAGENT_REQUIRE_PCSC=1 $(GO) test -p 1 -count=1 -timeout $(TESTTIMEOUT) ./... && \
	  bash $(SCRIPTS)/acceptance.sh'

demo: deps build
	bash $(SCRIPTS)/with-pcscd.sh bash $(SCRIPTS)/demo.sh

# Benchmarks on the real stack; figures are machine-dependent, each comes
# with its baseline measured in the same run.
bench: deps
	bash $(SCRIPTS)/with-pcscd.sh bash -c '\
	  $(GO) run ./bench/cardevents -mode latency -n 50 && \
	  $(GO) run ./bench/cardevents -mode idle -d 60s && \
	  $(GO) run ./bench/signing -n 30 && \
	  $(GO) test -run "^$$" -bench TLSHandshake -benchtime 100x ./pkcs11 && \
	  $(GO) test -run "^$$" -bench . -benchtime 200x ./testcards/vpcd && \
	  $(GO) test -run "^$$" -bench "Transaction|Feed100MB" -benchtime 3s ./dmp/dmptest && \
	  $(GO) run ./bench/agent -mode api -d 10s -c 64 && \
	  $(GO) build -o $(BIN) ./cmd/dmpagent && \
	  $(GO) run ./bench/agent -mode start -n 20 && \
	  $(GO) run ./bench/agent -mode events -n 30 && \
	  $(GO) run ./bench/agent -mode idle -d 60s'


lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
