# libpvcalls: PV Calls for unmodified programs.
#
#   make              build everything (build/)
#   make check        unit and end-to-end tests, plain, under ASan+UBSan,
#                     and the threaded ones under ThreadSanitizer
#   make install PREFIX=/usr/local
#   make deps         install the Debian packages (root)
#
# SAN=1 builds into build-asan/ with AddressSanitizer + UBSan;
# SAN=thread into build-tsan/ with ThreadSanitizer.

CC ?= gcc
PREFIX ?= /usr/local
SAN ?= 0

ifeq ($(SAN),1)
BUILD ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
else ifeq ($(SAN),thread)
# -Wno-tsan: TSan does not model the stand-alone fences of wire.h's ring
# barriers; those order memory shared with another process (the peer
# domain), which TSan cannot see anyway.
BUILD ?= build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan
# Linked into every test, not taken from the archive: it replaces a libc
# function for libcriterion (see the file).
TSAN_TEST_OBJS = $(BUILD)/obj/tests/lib/tsan_criterion.o
else
BUILD ?= build
SANFLAGS :=
endif

CPPFLAGS += -Iinclude -D_GNU_SOURCE -MMD -MP
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -fPIC $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
# libxengnttab and libxenevtchn are loaded at run time by the Xen platform
# (platform/xen_libs.c), so that the daemons start without them.
XENLIBS := -lxenstore -ldl
# The backend's policy file is INI, read with libinih.
BACKDLIBS := -linih
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
.PHONY: all check check-plain check-asan check-tsan tsan-build install install-deploy check-manpages check-xen deps \
        clean
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
	$(CC) $(LDFLAGS) $^ $(XENLIBS) $(BACKDLIBS) -o $@

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

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TSAN_TEST_OBJS) $(TESTLIB) \
                  $(BACKDLIB) $(FRONTDLIB) \
                  $(BROKERLIB) $(STORELIB) $(SIMXLLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(XENLIBS) $(BACKDLIBS) $(TESTLIBS) -lpthread -o $@

# Tests run against the binaries of the same build (PVC_BUILD tells the
# harness where they are); then the whole suite again under sanitizers.
check: check-plain check-asan check-tsan

check-plain: all
	scripts/check-manpages $(BUILD)
	scripts/run-tests $(BUILD)

# Every program's --help and its man page name the same options.
check-manpages: all
	scripts/check-manpages $(BUILD)

# The fuzz corpus (fuzz/corpus) replays under the sanitizers too.
check-asan:
	$(MAKE) SAN=1 all
	scripts/run-tests build-asan
	$(MAKE) SAN=1 fuzz-replay

# ThreadSanitizer runs only the tests whose own process runs threads
# against our code (test threads, hostnet peers): a TSan shim cannot be
# preloaded into other programs (test_shim_epoll skips itself under TSan;
# test_shim_epoll_inst and test_shim_wait run its threaded paths), and
# the single-threaded tests would only repeat the plain stage at 5-15
# times the cost.  The daemons the listed tests start come from the same
# build, so they are checked too.  Names are relative to the build
# directory.
TSAN_BUILD := build-tsan
TSAN_TESTS := tests/unit/test_shim_data tests/unit/test_shim_fdtable \
              tests/unit/test_shim_wait tests/unit/test_shim_epoll_inst \
              tests/unit/test_sim_platform tests/unit/test_xenbus \
              tests/e2e/test_testlib tests/e2e/test_backend_concurrency \
              tests/unit/test_ring_waiting
# run-tests' filter: the listed binaries and nothing else.
empty :=
space := $(empty) $(empty)
TSAN_FILTER := /($(subst $(space),|,$(strip $(TSAN_TESTS))))$$
# A reported race fails the test (exit 66 from the racing process).
TSAN_ENV := TSAN_OPTIONS="$${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/lib/tsan-suppressions.txt}"

check-tsan:
	$(MAKE) SAN=thread BUILD=$(TSAN_BUILD) tsan-build
	$(TSAN_ENV) scripts/run-tests $(TSAN_BUILD) '$(TSAN_FILTER)'

# The daemons and the listed tests (no programs: nothing here preloads
# the shim into them).
tsan-build: $(BINS) $(addprefix $(BUILD)/,$(TSAN_TESTS))

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib
	install -m 755 $(filter $(BUILD)/bin/%,$(BINS)) $(DESTDIR)$(PREFIX)/bin
	$(if $(filter $(SHIM),$(BINS)),install -m 755 $(SHIM) $(DESTDIR)$(PREFIX)/lib)
	install -m 755 scripts/pvcalls-run scripts/pvcalls-entrypoint $(DESTDIR)$(PREFIX)/bin

# systemd searches /usr/local/lib/systemd/system and /usr/lib/systemd/system.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/pvcalls

# Units, man pages, and (for the administrator to copy into /etc) the xl
# example, modules-load and logrotate files: see deploy/README.md.
install: install-deploy
install-deploy:
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	for u in deploy/systemd/*.service; do \
	    sed 's|/usr/local|$(PREFIX)|g' $$u >$(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/} && \
	    chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${u##*/} || exit 1; \
	done
	for p in man/*.[1578]; do \
	    install -D -m 644 $$p $(DESTDIR)$(PREFIX)/share/man/man$${p##*.}/$${p##*/} || exit 1; \
	done
	install -D -m 644 deploy/xl/pvcalls-guest.cfg $(DESTDIR)$(DOCDIR)/pvcalls-guest.cfg
	install -D -m 644 deploy/modules-load.d/pvcalls-frontd.conf \
	    $(DESTDIR)$(DOCDIR)/modules-load.d/pvcalls-frontd.conf
	install -D -m 644 deploy/logrotate.d/pvcalls-backd \
	    $(DESTDIR)$(DOCDIR)/logrotate.d/pvcalls-backd

deps:
	scripts/install-deps

# The project on real Xen 4.17 under QEMU (needs root; builds and caches
# dom0 and guest images from Debian packages): see scripts/xen/README.md.
check-xen:
	scripts/xen/check-xen

# make bench (not part of make check): see bench/README.md.
include bench/bench.mk

# make fuzz, make fuzz-replay: see fuzz/README.md.
include fuzz/fuzz.mk

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
