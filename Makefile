# Synod — see README.md. `make test` sets up a fresh Debian machine (liblmdb-dev) and runs every test.
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
RELEASE_BIN = .build/release

.PHONY: test run selfcheck deps build release bench clean

deps:
	@dpkg -s liblmdb-dev >/dev/null 2>&1 || { \
	  echo "installing liblmdb-dev (LMDB headers and library)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq liblmdb-dev; }
	@command -v curl >/dev/null 2>&1 || { \
	  echo "installing curl (the JSON gateway tests drive it)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq curl; }

build: deps
	$(SWIFT) build --build-tests

# Every test: unit, conformance (LMDB and in-memory), SIGKILL crash cycles, simulator seeds;
# then the real-process cluster tests on their own, so parallel CPU-heavy suites cannot starve
# their elections. All tests use Swift Testing (--disable-xctest skips an empty XCTest pass).
test: build
	$(SWIFT) test --skip-build --disable-xctest --skip SynodNodeTests
	$(SWIFT) test --skip-build --disable-xctest --filter SynodNodeTests

release: deps
	$(SWIFT) build -c release

# The main job: a local 3-node cluster (Ctrl-C stops it). Data in ./data.
run: release
	$(RELEASE_BIN)/synod dev --nodes 3 --data ./data

# Storage self-check of a scratch store.
selfcheck: release
	$(RELEASE_BIN)/synod storage selfcheck

# Storage micro-benchmark (docs/BENCHMARKS.md).
bench: release
	$(RELEASE_BIN)/synod-lmdb-bench

clean:
	rm -rf .build
