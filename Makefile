# Thin wrappers so the README stays two commands. The real build is Meson (meson.build).
.PHONY: run test build build-asan unit e2e e2e-asan deps clean

BUILD      := build
ASAN_BUILD := build-asan
E2E        := tests/e2e

deps:
	@bash scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Db_ndebug=if-release

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

run: build
	./$(BUILD)/broker

$(E2E)/node_modules/.package-lock.json: $(E2E)/package-lock.json
	cd $(E2E) && npm ci --no-audit --no-fund

# Every suite, on the release build and on the ASan+UBSan build.
test: build build-asan $(E2E)/node_modules/.package-lock.json
	meson test -C $(BUILD) --print-errorlogs
	meson test -C $(ASAN_BUILD) --print-errorlogs
	cd $(E2E) && BROKER_BIN=$(CURDIR)/$(BUILD)/broker npm test
	cd $(E2E) && BROKER_BIN=$(CURDIR)/$(ASAN_BUILD)/broker BROKER_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 npm test

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# Benchmark against nginx + nchan (bench/compare.sh; RUNS=, QUICK=1, SCENARIOS= to adjust).
.PHONY: bench
bench:
	bash bench/compare.sh
