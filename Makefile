# Vessel - the thin layer over Meson that the README's commands use.
#   make          build everything into build/ (build/vesseld, build/vhd, ...)
#   make run      install what is missing, build, run vesseld on ./var
#   make test     install, build, run every test (plain, then ASan+UBSan, then
#                 the fuzzers briefly); last line "N passed, N failed"
#   make bench    the benchmarks (bench/run)
SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 5
DATA_DIR ?= ./var

.PHONY: all deps build run test test-plain test-asan test-fuzz bench clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	@echo "vesseld: XenAPI on http://127.0.0.1:8080/ and https://$$(hostname):8443/ (unix socket $(DATA_DIR)/xapi.sock)"
	@echo "vesseld: log in as root; on first start the password is printed below and saved in $(DATA_DIR)/root-password"
	./$(BUILD)/vesseld --data-dir $(DATA_DIR)

test: deps
	@rm -f .test-results/*.json; mkdir -p .test-results
	@# the Debian test guest (debootstrap, minutes on a fresh machine, then
	@# cached) is built while the code compiles; its test waits on the
	@# cache's lock, and builds it itself if this did not (not root, say)
	@(d=$$(mktemp -d) && sh tests/guest/build-debian.sh "$$d" > .test-results/debian-prefetch.log 2>&1; \
	  rm -rf "$$d") < /dev/null > /dev/null 2>&1 &
	@status=0; \
	for run in plain asan fuzz; do \
	  if ! $(MAKE) --no-print-directory test-$$run; then \
	    status=1; echo "not ok 1 - the $$run build or run failed" > .test-results/$$run-error.tap; \
	  fi; \
	done; \
	python3 tests/summarize.py .test-results || status=1; exit $$status

# Suites: "slow" runs in the plain build only (guests whose timing is what a
# test measures, etcd clusters); "asan-only" only under the sanitizers (a
# unit test whose worth is the memory checks, run once): the whole run stays
# within its time budget.
test-plain: $(BUILD)/build.ninja
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 --no-suite asan-only || \
	  echo "not ok 1 - meson test exited non-zero (plain)" > .test-results/plain-meson.tap
	@cp $(BUILD)/meson-logs/testlog.json .test-results/plain.json

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug

test-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	meson test -C $(ASAN_BUILD) --print-errorlogs --num-processes 2 --timeout-multiplier 3 --no-suite slow || \
	  echo "not ok 1 - meson test exited non-zero (asan)" > .test-results/asan-meson.tap
	@cp $(ASAN_BUILD)/meson-logs/testlog.json .test-results/asan.json

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dtests=true -Dwerror=true --buildtype=debugoptimized

test-fuzz: $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) $$(ninja -C $(FUZZ_BUILD) -t targets all | grep -o '^tests/fuzz/[a-z_]*_libfuzzer' | sort -u)
	bash tests/fuzz/run-fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) > .test-results/fuzz.tap; \
	  rc=$$?; cat .test-results/fuzz.tap; exit 0

bench: build
	bash bench/run

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) .test-results
