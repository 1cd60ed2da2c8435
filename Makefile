# Thin wrappers so the README stays two commands. The real build is Meson (meson.build).
.PHONY: run test build build-asan build-valgrind deps-run deps-test deps-valgrind valgrind fuzz fuzz-smoke bench bench-cluster install deb demo clean

BUILD      := build
ASAN_BUILD := build-asan
VG_BUILD   := build-valgrind
E2E        := tests/e2e

deps-run:
	@bash scripts/deps.sh run

deps-test:
	@bash scripts/deps.sh test

deps-valgrind:
	@bash scripts/deps.sh valgrind

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Db_ndebug=if-release

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

$(VG_BUILD)/build.ninja:
	meson setup $(VG_BUILD) --buildtype=debug -Db_sanitize=none

build: deps-run $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps-run $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

build-valgrind: deps-valgrind $(VG_BUILD)/build.ninja
	ninja -C $(VG_BUILD) broker

run: build
	./$(BUILD)/broker

$(E2E)/node_modules/.package-lock.json: $(E2E)/package-lock.json
	cd $(E2E) && npm ci --no-audit --no-fund

# The nats-server binaries of the cluster suite (tests/cluster/js_check.c): 2.10+ and Debian 12's 2.9,
# fetched into build/nats/ by scripts/nats-server.sh (deps-test does it). Empty when unavailable: then
# that test reports itself skipped.
NATS_ENV = NATS_SERVER="$$(bash scripts/nats-server.sh)" NATS_SERVER_OLD="$$(bash scripts/nats-server.sh --old)"

# Every suite: unit, cluster (against real nats-server processes) and end-to-end on the release build
# and on the ASan+UBSan build, then a short run of every fuzzer (fixed seed) over its corpus.
test: deps-test build build-asan $(E2E)/node_modules/.package-lock.json
	$(NATS_ENV) meson test -C $(BUILD) --print-errorlogs
	$(NATS_ENV) meson test -C $(ASAN_BUILD) --print-errorlogs
	cd $(E2E) && BROKER_BIN=$(CURDIR)/$(BUILD)/broker npm test
	cd $(E2E) && BROKER_BIN=$(CURDIR)/$(ASAN_BUILD)/broker BROKER_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 npm test
	bash tests/packaging/deb.sh
	$(MAKE) fuzz-smoke

# The e2e suite with every broker under valgrind memcheck (debug build, no sanitizers), then a scan of
# the logs: any memcheck error, or definitely/indirectly lost bytes at exit, fails. Slow (not part of
# make test). VG_SLOWDOWN, VG_FILES, VG_SKIP, VG_LOG_DIR: see scripts/valgrind-e2e.sh.
valgrind: build-valgrind $(E2E)/node_modules/.package-lock.json
	bash scripts/valgrind-e2e.sh $(VG_BUILD)/broker

# The shared-form demo (examples/forms): broker on 127.0.0.1:$(DEMO_PORT) with the example's rules and a
# throw-away --db, and the page on 127.0.0.1:$(DEMO_PAGE_PORT) (examples/forms/serve.mjs, also serving
# clients/js), the only origin broker lets in. Ctrl-C stops both and removes the data.
DEMO_PORT      ?= 8080
DEMO_PAGE_PORT ?= 8081
demo: build
	@command -v node >/dev/null || { echo 'make demo needs node (Node.js 20+)'; exit 1; }
	@db=$$(mktemp -d /tmp/broker-demo.XXXXXX); \
	./$(BUILD)/broker --host=127.0.0.1 --port=$(DEMO_PORT) --db="$$db" --rules=examples/forms/rules \
	  --origin=http://127.0.0.1:$(DEMO_PAGE_PORT) --log_level=warn & broker=$$!; \
	trap 'kill $$broker 2>/dev/null; wait $$broker 2>/dev/null; rm -rf "$$db"' EXIT INT TERM; \
	sleep 0.5; kill -0 $$broker 2>/dev/null || { echo 'demo: broker did not start (is port $(DEMO_PORT) taken?)'; exit 1; }; \
	node examples/forms/serve.mjs --port=$(DEMO_PAGE_PORT) --broker=http://127.0.0.1:$(DEMO_PORT)

# libFuzzer: FUZZ_SECONDS per target (fuzz/run.sh; results in fuzz/RESULTS.md).
FUZZ_SECONDS ?= 600
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke:
	bash fuzz/run.sh replay
	FUZZ_SEED=1 bash fuzz/run.sh 60

# Benchmark against nginx + nchan (bench/compare.sh; RUNS=, QUICK=1, SCENARIOS= to adjust).
bench:
	bash bench/compare.sh

# Cluster mode on NATS JetStream (bench/cluster.sh: inserts vs the embedded store, and 5 nodes x 18,000
# subscribers on one 3-server JetStream; RUNS=, QUICK=1, SCENARIOS= to adjust).
bench-cluster:
	bash bench/cluster.sh

# Installs the binary, broker(1), the systemd unit and $(SYSCONFDIR)/default/broker under
# $(DESTDIR)$(PREFIX) (a build of its own, configured for that prefix).
PREFIX ?= /usr/local
INSTALL_BUILD := build-install
install: deps-run
	[ -f $(INSTALL_BUILD)/build.ninja ] || meson setup $(INSTALL_BUILD) --buildtype=release -Db_ndebug=if-release -Dtests=disabled
	meson configure $(INSTALL_BUILD) -Dprefix=$(PREFIX)
	ninja -C $(INSTALL_BUILD)
	meson install -C $(INSTALL_BUILD) $(if $(DESTDIR),--destdir "$(DESTDIR)")

# The Debian package, built in a scratch copy of the tree and checked (tests/packaging/deb.sh);
# dpkg-buildpackage -us -uc -b in the tree itself leaves ../broker_<version>_<arch>.deb.
deb: deps-test
	bash tests/packaging/deb.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(VG_BUILD) $(INSTALL_BUILD) build-fuzz
