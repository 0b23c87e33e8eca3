# fcvm — entry points. Everything installs what it needs (Debian packages via
# scripts/install-deps.sh, guest artifacts via scripts/fcvm-init.sh).
#   make demo     build everything and run a demo VM serving nginx on http://127.0.0.1:8080
#   make test     build everything and run all test tiers (unit, integration, e2e) and a short
#                 run of every fuzz target
#   make test-asan  the unit and integration tiers under ASan + UBSan (the asan preset; CI runs it)
#   make chaos    CHAOS_KILLS random kill -9 per network mode (default 200; tests/chaos/chaos.py)
#   make load     20 VMs (run -d and clones) started and removed at once, twice (tests/soak/load.sh)
#   make fuzz     every fuzz target for FUZZ_RUNS executions (default 10^6; fuzz/run.sh)
#   make install  the binary, agent, completions and manual pages under PREFIX (default
#                 /usr/local; DESTDIR honoured)
PRESET      ?= release
BUILD       := build/$(PRESET)
FCVM        := $(BUILD)/fcvm
AGENT       := $(BUILD)/fc-agent
IMAGES      := build/images
CTEST_ARGS  ?=
DEMO_PORT   ?= 8080
FUZZ_RUNS   ?= 1000000
CHAOS_KILLS ?= 200
FUZZ        := build/fuzz
PREFIX      ?= /usr/local

.PHONY: all deps build install guest images test test-unit test-integration test-e2e test-asan chaos load fuzz fuzz-build demo bench format lint clean

all: build

deps:
	@scripts/install-deps.sh all

build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build $(BUILD)

install: build
	@scripts/install.sh $(BUILD) $(PREFIX)

guest: build
	@scripts/fcvm-init.sh --agent $(AGENT)

images: deps
	@scripts/build-test-images.sh $(IMAGES)

test: build guest images fuzz-build
	@FCVM_TEST_IMAGES=$(CURDIR)/$(IMAGES) ctest --test-dir $(BUILD) --output-on-failure $(CTEST_ARGS)
	@fuzz/run.sh $(FUZZ) 20000 60

test-unit: build
	@ctest --test-dir $(BUILD) --output-on-failure -L unit $(CTEST_ARGS)

test-integration: build guest images
	@FCVM_TEST_IMAGES=$(CURDIR)/$(IMAGES) ctest --test-dir $(BUILD) --output-on-failure -L integration $(CTEST_ARGS)

test-e2e: build guest images
	@FCVM_TEST_IMAGES=$(CURDIR)/$(IMAGES) ctest --test-dir $(BUILD) --output-on-failure -L e2e $(CTEST_ARGS)

test-asan: deps guest images
	@cmake --preset asan >/dev/null
	@cmake --build build/asan
	@FCVM_TEST_IMAGES=$(CURDIR)/$(IMAGES) ctest --test-dir build/asan --output-on-failure -L 'unit|integration' $(CTEST_ARGS)

chaos: build guest images
	@FCVM_BIN=$(CURDIR)/$(FCVM) FCVM_SOURCE_DIR=$(CURDIR) FCVM_BUILD_DIR=$(CURDIR)/$(BUILD) \
	  FCVM_TEST_IMAGES=$(CURDIR)/$(IMAGES) CHAOS_KILLS=$(CHAOS_KILLS) tests/integration/test_chaos.sh

load: build guest images
	@tests/soak/load.sh $(FCVM) $(IMAGES) 20 2

fuzz-build: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz

fuzz: fuzz-build
	@fuzz/run.sh $(FUZZ) $(FUZZ_RUNS)

demo: build guest images
	@scripts/demo.sh $(FCVM) $(IMAGES)/nginx.oci.tar $(DEMO_PORT)

bench: build guest images
	@bench/cold_run.sh $(FCVM) $(IMAGES)
	@bench/lifecycle.sh $(FCVM) $(IMAGES)
	@bench/net.sh $(BUILD)
	@bench/clone.sh $(FCVM) $(IMAGES) $(BUILD)
	@bench/volumes.sh $(FCVM) $(IMAGES)
	@bench/firecracker.sh $(FCVM) $(IMAGES)
	@bench/tcg_clocksource.sh $(FCVM) $(IMAGES)

format:
	@find src tests bench fuzz -name '*.cpp' -o -name '*.hpp' | xargs clang-format -i

lint:
	@find src tests fuzz -name '*.cpp' -o -name '*.hpp' | xargs clang-format --dry-run --Werror

clean:
	rm -rf build
