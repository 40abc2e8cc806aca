# libpvcalls: PV Calls for unmodified programs.
#
#   make              build everything (build/)
#   make check        unit and end-to-end tests, plain and under ASan+UBSan
#   make install PREFIX=/usr/local
#   make deps         install the Debian packages (root)
#
# SAN=1 builds into build-asan/ with AddressSanitizer + UBSan.

CC ?= gcc
PREFIX ?= /usr/local
SAN ?= 0

ifeq ($(SAN),1)
BUILD ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS :=
endif

CPPFLAGS += -Iinclude -D_GNU_SOURCE -MMD -MP
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -fPIC $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
XENLIBS := -lxenstore -lxengnttab -lxenevtchn
TESTLIBS := -lcriterion

# The shared layers, in the order data flows through them.
LIB_SRC := $(wildcard common/*.c ring/*.c platform/*.c xenbus/*.c)
SIMD_SRC := $(wildcard sim/broker/*.c sim/store/*.c)
SIMXL_SRC := $(wildcard sim/xl/*.c)
BACKD_SRC := $(wildcard backend/*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TEST_SRC := $(wildcard tests/unit/test_*.c tests/e2e/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB := $(BUILD)/libpvc.a
TESTLIB := $(BUILD)/libpvctest.a
BINS := $(BUILD)/bin/pvcalls-simd $(BUILD)/bin/pvcalls-simxl \
        $(BUILD)/bin/pvcalls-backd
TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

.PHONY: all check check-plain check-asan install deps clean
all: $(BINS) $(TESTS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(TESTLIB): $(call obj,$(TESTLIB_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/bin/pvcalls-simd: $(call obj,$(SIMD_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(XENLIBS) -o $@

$(BUILD)/bin/pvcalls-simxl: $(call obj,$(SIMXL_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(XENLIBS) -o $@

$(BUILD)/bin/pvcalls-backd: $(call obj,$(BACKD_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(XENLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(XENLIBS) $(TESTLIBS) -lpthread -o $@

# Tests run against the binaries of the same build (PVC_BUILD tells the
# harness where they are); then the whole suite again under sanitizers.
check: check-plain check-asan

check-plain: all
	scripts/run-tests $(BUILD)

check-asan:
	$(MAKE) SAN=1 all
	scripts/run-tests build-asan

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin

deps:
	scripts/install-deps

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
