# Headroom's two commands: `make serve` and `make test`. Both install what is
# missing (scripts/setup.sh), then build with CMake and Ninja.
#
#   make serve          build (release) and run `headroom serve` on the embedded default
#   make test           build and run every test (unit, integration, fuzz) with ctest
#   make test-asan      the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench          the benchmarks of bench/, printing the figures the issues ask for
#   make build          just build (release)

BUILD_TYPE ?= RelWithDebInfo
BUILD_DIR  ?= build/release
ASAN_DIR   ?= build/debug
JOBS       ?= $(shell nproc)
SERVE_ARGS ?=

.PHONY: all setup build serve test test-asan bench clean format

all: build

setup:
	@bash scripts/setup.sh

$(BUILD_DIR)/build.ninja: CMakeLists.txt | setup
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: setup $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

serve: build
	$(BUILD_DIR)/headroom serve $(SERVE_ARGS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600

$(ASAN_DIR)/build.ninja: CMakeLists.txt | setup
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug

test-asan: setup $(ASAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900

bench: build
	bash bench/run.sh $(BUILD_DIR)

clean:
	rm -rf build

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')
