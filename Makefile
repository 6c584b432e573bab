# dpsemu - plain Makefile. `make` builds, `make run` starts the emulator,
# `make test` runs every test. Overridable: CC, CFLAGS, BUILD, SANITIZE.

CC ?= cc
BUILD ?= build
SANITIZE ?=
WERROR ?= $(if $(CI),-Werror,)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter $(WERROR)
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) -MMD -MP -I. -Icommon -D_GNU_SOURCE \
	$(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer,)
LDFLAGS_ALL := $(LDFLAGS) $(if $(SANITIZE),-fsanitize=$(SANITIZE),)
LIBS := -lmicrohttpd -llmdb -ljansson -lcurl -lmosquitto -lssl -lcrypto

# One static library per source folder, linked in dependency order (top first).
LIBDIRS := dps hub-sim enrollments certs common
lib_srcs = $(wildcard $(1)/*.c)
lib_objs = $(patsubst %.c,$(BUILD)/%.o,$(call lib_srcs,$(1)))
LIBFILES := $(foreach d,$(LIBDIRS),$(BUILD)/lib$(d).a)

BIN := $(BUILD)/dpsemu
TOOLS := $(BUILD)/tools/dps-device
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
# Shared test helpers (certificates made at run time, ...) linked into every unit test.
UNIT_SUPPORT := $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(UNIT_SRCS),$(wildcard tests/unit/*.c)))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%-replay,$(FUZZ_SRCS))

.PHONY: all deps test-deps run test unit fuzz fuzz-replay integ sdk bench lint format-check clean
all: $(BIN) $(TOOLS)

deps:
	@scripts/deps.sh build
test-deps:
	@scripts/deps.sh test

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

define lib_rule
$(BUILD)/lib$(1).a: $(call lib_objs,$(1))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach d,$(LIBDIRS),$(eval $(call lib_rule,$(d))))

$(BIN): $(BUILD)/main.o $(LIBFILES)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/tools/dps-device: $(BUILD)/tools/dps_device.o | test-deps
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lmosquitto -lssl -lcrypto -ljansson

# The client side of `make bench` (not part of `all` or `make test`).
$(BUILD)/tools/bench: $(BUILD)/tools/bench.o $(BUILD)/libcommon.a | test-deps
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lssl -lcrypto -ljansson

# Rates measured against a baseline in the same run; information, never pass/fail.
bench: $(BIN) $(BUILD)/tools/bench | test-deps
	@scripts/bench.sh $(abspath $(BIN)) $(abspath $(BUILD)/tools/bench)

$(BUILD)/unit/%: $(BUILD)/tests/unit/%.o $(UNIT_SUPPORT) $(LIBFILES) | test-deps
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(UNIT_SUPPORT) $(LIBFILES) $(LIBS) -lcmocka

# Fuzz targets are built as replayers (a small main that feeds every corpus
# file) so `make test` runs them without clang; `make fuzz` builds libFuzzer.
$(BUILD)/fuzz/%-replay: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay_main.o $(LIBFILES)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# libFuzzer builds (clang): make fuzz FUZZ_SECONDS=60 runs each target that long.
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
fuzz:
	@set -e; mkdir -p $(BUILD)/libfuzzer; for f in $(FUZZ_SRCS); do \
		n=$$(basename $$f .c); c=tests/fuzz/corpus/$${n#fuzz_}; \
		$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icommon -D_GNU_SOURCE \
			$$f $(filter-out main.c,$(wildcard common/*.c)) dps/wire.c certs/x509.c certs/gen.c certs/issue.c hub-sim/propbag.c hub-sim/hub_wire.c \
			-o $(BUILD)/libfuzzer/$$n $(LIBS); \
		mkdir -p $(BUILD)/libfuzzer/$$n-corpus; \
		$(BUILD)/libfuzzer/$$n -max_total_time=$(FUZZ_SECONDS) $(BUILD)/libfuzzer/$$n-corpus $$c; \
	done

run: $(BIN)
	$(BIN)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

fuzz-replay: $(FUZZ_REPLAY)
	@set -e; for t in $(FUZZ_REPLAY); do n=$$(basename $$t -replay); \
		echo "== $$n corpus"; $$t tests/fuzz/corpus/$${n#fuzz_}/*; done

integ: $(BIN) $(TOOLS) | test-deps
	@tests/run-node-tests.sh integ $(abspath $(BIN)) $(abspath $(BUILD)/tools)

sdk: $(BIN) | test-deps
	@tests/run-node-tests.sh sdk $(abspath $(BIN)) $(abspath $(BUILD)/tools)

# Everything, then the unit and integration suites again under ASan+UBSan.
test: test-deps
	$(MAKE) unit fuzz-replay integ sdk
	$(MAKE) BUILD=build/asan SANITIZE=address,undefined CFLAGS="-O1 -g" unit fuzz-replay integ

# Banned calls: unbounded copies and parsers without error reporting.
lint:
	@if grep -nE '\b(strcpy|sprintf|strtok|atoi|gets)\s*\(' $$(git ls-files '*.c' '*.h'); then \
		echo "lint: banned call (use snprintf, strtok_r, strtol)"; exit 1; fi
	@echo "lint: ok"

format-check:
	@clang-format --dry-run $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)
