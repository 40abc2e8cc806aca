# Fuzzing (included from the Makefile; see fuzz/README.md).
#
#   make fuzz FUZZ_SECONDS=N   build the libFuzzer targets with clang in
#                              build-fuzz/ and run each for N seconds over
#                              its seed corpus (new inputs: build-fuzz/
#                              corpus-new/<target>/, crashes: build-fuzz/
#                              crashes/), at nice 19
#   make fuzz-replay           (any BUILD/SAN) every target's replay binary,
#                              built with $(CC), over fuzz/corpus/<target>/:
#                              make check runs it under ASan+UBSan
#
# libFuzzer needs clang and Debian's libclang-rt-14-dev (fuzz/install-deps);
# the replay needs nothing beyond scripts/install-deps.

FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
# Shared by every target: the fake platform, fake xenstore, harnesses.
FUZZ_LIB_SRC := $(filter-out fuzz/fuzz_%.c fuzz/replay.c,$(wildcard fuzz/*.c))
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build-fuzz
FUZZ_CC ?= clang-14
FUZZ_SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                 -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror $(FUZZ_SANFLAGS) \
               -fsanitize=fuzzer-no-link
# What a target links, as archives (as the Makefile's tests do, so that
# only the members a target needs are pulled in): the fakes first, then
# the code under test.
FUZZ_ARCHIVES := $(FUZZ_BUILD)/libfuzzfake.a $(FUZZ_BUILD)/libbackd.a \
                 $(FUZZ_BUILD)/libfrontd.a $(FUZZ_BUILD)/libpvc.a
FUZZ_LIBS := $(XENLIBS) $(BACKDLIBS) -lpthread
fuzz_obj = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(1))

.PHONY: fuzz fuzz-build fuzz-replay

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -Iinclude -D_GNU_SOURCE -MMD -MP $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/libfuzzfake.a: $(call fuzz_obj,$(FUZZ_LIB_SRC))
$(FUZZ_BUILD)/libbackd.a: $(call fuzz_obj,$(BACKD_SRC))
$(FUZZ_BUILD)/libfrontd.a: $(call fuzz_obj,$(FRONTD_SRC))
$(FUZZ_BUILD)/libpvc.a: $(call fuzz_obj,$(LIB_SRC))
$(FUZZ_ARCHIVES):
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(FUZZ_BUILD)/bin/fuzz_%: $(FUZZ_BUILD)/obj/fuzz/fuzz_%.o $(FUZZ_ARCHIVES)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer $^ $(FUZZ_LIBS) -o $@

fuzz-build: $(addprefix $(FUZZ_BUILD)/bin/fuzz_,$(FUZZ_TARGETS))

# Each target in turn, at the lowest priority: a run stops at the first
# crash (the crash file lands in crashes/) and make fuzz fails.
fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/crashes
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus-new/$$t; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	    nice -n 19 $(FUZZ_BUILD)/bin/fuzz_$$t \
	        -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t- \
	        $(FUZZ_BUILD)/corpus-new/$$t fuzz/corpus/$$t \
	        2>$(FUZZ_BUILD)/fuzz-$$t.log || \
	        { tail -40 $(FUZZ_BUILD)/fuzz-$$t.log; exit 1; }; \
	    grep -E '^#[0-9]+[[:space:]]+DONE' $(FUZZ_BUILD)/fuzz-$$t.log | tail -1; \
	done

# ---- the replay, with the project's compiler and flags -------------

FUZZ_REPLAYS := $(addprefix $(BUILD)/fuzz/replay_,$(FUZZ_TARGETS))

$(BUILD)/libfuzzfake.a: $(call obj,$(FUZZ_LIB_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/fuzz/replay_%: $(BUILD)/obj/fuzz/fuzz_%.o $(BUILD)/obj/fuzz/replay.o \
                        $(BUILD)/libfuzzfake.a $(BACKDLIB) $(FRONTDLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(FUZZ_LIBS) -o $@

# A sanitizer report aborts the replay (halt_on_error), failing make.
fuzz-replay: $(FUZZ_REPLAYS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1} \
	    UBSAN_OPTIONS=$${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
	    $(BUILD)/fuzz/replay_$$t fuzz/corpus/$$t; \
	done

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
