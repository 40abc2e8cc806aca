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
# Each program is its main.c plus a library of its modules, which unit
# tests link as well.
STORE_SRC := $(wildcard sim/store/*.c)
BROKER_SRC := $(filter-out sim/broker/main.c,$(wildcard sim/broker/*.c))
SIMXL_SRC := $(filter-out sim/xl/main.c,$(wildcard sim/xl/*.c))
BACKD_SRC := $(filter-out backend/main.c,$(wildcard backend/*.c))
FRONTD_SRC := $(filter-out frontd/main.c,$(wildcard frontd/*.c))
# The shim links only what a data path needs: no libxenstore, no broker.
SHIM_SRC := $(wildcard shim/*.c) $(wildcard ring/*.c) platform/handoff.c \
            common/log.c
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TEST_SRC := $(wildcard tests/unit/test_*.c tests/e2e/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB := $(BUILD)/libpvc.a
TESTLIB := $(BUILD)/libpvctest.a
STORELIB := $(BUILD)/libsimstore.a
BROKERLIB := $(BUILD)/libsimbroker.a
SIMXLLIB := $(BUILD)/libsimxl.a
BACKDLIB := $(BUILD)/libbackd.a
FRONTDLIB := $(BUILD)/libfrontd.a
SHIM := $(BUILD)/lib/libpvcalls.so
BINS := $(BUILD)/bin/pvcalls-simd $(BUILD)/bin/pvcalls-simxl \
        $(BUILD)/bin/pvcalls-backd
ifneq ($(wildcard frontd/main.c),)
BINS += $(BUILD)/bin/pvcalls-frontd
endif
ifneq ($(wildcard shim/*.c),)
BINS += $(SHIM)
endif
TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
# Plain programs that tests run natively and under the shim.
PROGS := $(patsubst tests/progs/%.c,$(BUILD)/progs/%,$(wildcard tests/progs/*.c))

.SECONDARY:
.PHONY: all check check-plain check-asan install deps clean
all: $(BINS) $(TESTS) $(PROGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(TESTLIB): $(call obj,$(TESTLIB_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(STORELIB): $(call obj,$(STORE_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BROKERLIB): $(call obj,$(BROKER_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(SIMXLLIB): $(call obj,$(SIMXL_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BACKDLIB): $(call obj,$(BACKD_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/bin/pvcalls-simd: $(BUILD)/obj/sim/broker/main.o $(BROKERLIB) $(STORELIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(XENLIBS) -o $@

$(BUILD)/bin/pvcalls-simxl: $(BUILD)/obj/sim/xl/main.o $(SIMXLLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(XENLIBS) -o $@

$(BUILD)/bin/pvcalls-backd: $(BUILD)/obj/backend/main.o $(BACKDLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(XENLIBS) -o $@

$(BUILD)/progs/%: tests/progs/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $< -lpthread -o $@

$(FRONTDLIB): $(call obj,$(FRONTD_SRC))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/bin/pvcalls-frontd: $(BUILD)/obj/frontd/main.o $(FRONTDLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(XENLIBS) -lpthread -o $@

$(SHIM): $(call obj,$(SHIM_SRC)) shim/libpvcalls.map
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -Wl,-z,defs -Wl,-soname,libpvcalls.so \
	    -Wl,--version-script=shim/libpvcalls.map \
	    $(filter %.o,$^) -ldl -lpthread -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB) $(BACKDLIB) $(FRONTDLIB) \
                  $(BROKERLIB) $(STORELIB) $(SIMXLLIB) $(LIB)
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
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib
	install -m 755 $(filter $(BUILD)/bin/%,$(BINS)) $(DESTDIR)$(PREFIX)/bin
	$(if $(filter $(SHIM),$(BINS)),install -m 755 $(SHIM) $(DESTDIR)$(PREFIX)/lib)
	install -m 755 scripts/pvcalls-run scripts/pvcalls-entrypoint $(DESTDIR)$(PREFIX)/bin

deps:
	scripts/install-deps

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
