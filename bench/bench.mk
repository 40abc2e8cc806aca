# make bench: included by the top-level Makefile (include bench/bench.mk).
# Builds the daemons, the shim and the benchmark tools of bench/src into
# $(BUILD), then runs bench/run on them.  Options (make variables or the
# environment): BENCH_REPEATS=N, BENCH_WORKLOADS=REGEX (which
# workload/direction pairs, e.g. 'bulk|rr-64/client'), BENCH_SYSTEMS=REGEX,
# BENCH_QUICK=1 (1 repeat, 1 s runs: a smoke check).  Not part of make
# check: see bench/README.md.

BENCH_TOOL_NAMES := pvcb-echo pvcb-rr pvcb-connect pvcb-hold
BENCH_TOOLS := $(addprefix $(BUILD)/bench/,$(BENCH_TOOL_NAMES))
BENCH_UTIL_OBJ := $(BUILD)/obj/bench/src/bench_util.o

.PHONY: bench bench-tools
bench-tools: $(BENCH_TOOLS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/src/%.o $(BENCH_UTIL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -lpthread -o $@

bench: $(BINS) $(BENCH_TOOLS)
	bench/run --build $(BUILD) \
	    $(if $(BENCH_REPEATS),--repeats $(BENCH_REPEATS)) \
	    $(if $(BENCH_WORKLOADS),--workloads '$(BENCH_WORKLOADS)') \
	    $(if $(BENCH_SYSTEMS),--systems '$(BENCH_SYSTEMS)') \
	    $(if $(filter 1,$(BENCH_QUICK)),--quick)
