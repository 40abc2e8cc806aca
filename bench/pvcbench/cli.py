"""bench/run: the command line, the interleaved loop, and clean-up on
every way out (normal end, a failed set-up, SIGINT/SIGTERM/SIGHUP)."""

import argparse
import datetime
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import report, systems, workloads
from .procs import BenchError, Procs

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(HERE)
# Enough for idle-10k: every socket, pipe and ring of 10,000 connections
# in one daemon.
NOFILE = 1 << 20


class Stop(Exception):
    """A signal asked the harness to end."""


class Context:
    """What every system and workload reads: paths, durations, the
    process registry."""

    def __init__(self, args):
        self.build = os.path.abspath(args.build)
        self.quick = args.quick
        self.repeats = 1 if args.quick else args.repeats
        self.seconds = 1 if args.quick else args.seconds
        self.idle_conns = args.idle_conns or (1000 if args.quick else 10000)
        self.idle_window_s = 1 if args.quick else 10
        self.idle_settle_s = 0.5 if args.quick else 2
        # Holding the connections must not take longer (slirp4netns
        # listens with a backlog of 1: connections to its forwarded port
        # wait for SYN retransmits).
        self.idle_setup_s = 60 if args.quick else 180
        self.idle_stall_s = 10 if args.quick else 20
        self.tag = f"pvcb{os.getpid()}"
        self.tmp = tempfile.mkdtemp(prefix="pvcbench-")
        self.logdir = os.path.join(self.tmp, "logs")
        os.makedirs(self.logdir)
        self.procs = Procs(self.logdir)
        self.pvcalls_run = os.path.join(ROOT, "scripts", "pvcalls-run")
        self.notes = []

    def bin(self, name):
        return os.path.join(self.build, "bin", name)

    def tool(self, name):
        return os.path.join(self.build, "bench", name)

    def note(self, text):
        print(f"  note: {text}", flush=True)
        self.notes.append(text)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Run each workload through each system (native, "
        "pvcalls, veth, slirp4netns, pasta), interleaved, and write "
        "bench/results/<UTC time>/{results.json,results.md,chart.png}.")
    p.add_argument("--build", default=os.path.join(ROOT, "build"),
                   help="build directory with bin/, lib/ and bench/ "
                   "(default: build)")
    p.add_argument("--repeats", type=int,
                   default=int(os.environ.get("BENCH_REPEATS", 3)),
                   help="repeats of every measurement (default "
                   "$BENCH_REPEATS or 3); the table shows medians")
    p.add_argument("--seconds", type=float, default=4,
                   help="duration of each bulk, rr and connect run (4)")
    p.add_argument("--idle-conns", type=int, default=0,
                   help="connections held by idle-10k (10000; --quick: "
                   "1000)")
    p.add_argument("--workloads", default=os.environ.get("BENCH_WORKLOADS",
                                                         ""),
                   help="regex on WORKLOAD/DIRECTION, e.g. 'bulk|rr-64/"
                   "client' (default $BENCH_WORKLOADS or all)")
    p.add_argument("--systems", default=os.environ.get("BENCH_SYSTEMS", ""),
                   help="regex on system names (native always runs: the "
                   "ratios need it)")
    p.add_argument("--quick", action="store_true",
                   default=os.environ.get("BENCH_QUICK") == "1",
                   help="smoke check: 1 repeat, 1 s runs, 1 s idle window "
                   "(also BENCH_QUICK=1)")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="where the timestamped results directory goes")
    p.add_argument("--keep-logs", action="store_true",
                   default=os.environ.get("BENCH_KEEP_LOGS") == "1",
                   help="copy every process's stderr into the results "
                   "directory (logs/)")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.seconds <= 0 or args.idle_conns < 0:
        p.error("--repeats, --seconds and --idle-conns must be positive")
    return args


def check_tools(ctx):
    """Fail before any set-up if something is missing."""
    missing = [path for path in
               [ctx.bin(n) for n in ("pvcalls-simd", "pvcalls-simxl",
                                     "pvcalls-backd", "pvcalls-frontd")]
               + [os.path.join(ctx.build, "lib", "libpvcalls.so")]
               + [ctx.tool(n) for n in ("pvcb-echo", "pvcb-rr",
                                        "pvcb-connect", "pvcb-hold")]
               if not os.access(path, os.R_OK)]
    missing += [t for t in ("iperf3", "ip", "gnuplot") if not shutil.which(t)]
    if os.geteuid() != 0:
        missing.append("root (network namespaces, veth)")
    if missing:
        sys.exit("bench/run: missing: " + ", ".join(missing)
                 + " (make bench builds the programs; bench/install-deps "
                 "installs the packages)")


def free_ports(count):
    """A run of count consecutive ports free on the host's loopback, below
    the ephemeral range."""
    import socket
    for base in range(20100, 32000, 100):
        try:
            socks = []
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise BenchError("no free port range")


def make_systems(ctx, pattern):
    chosen = [cls for cls in systems.ALL
              if cls.name == "native" or re.search(pattern, cls.name)]
    base = free_ports(2 * len(chosen))
    return [cls(ctx, (base + 2 * i, base + 2 * i + 1))
            for i, cls in enumerate(chosen)]


def setup_systems(ctx, syss):
    for s in syss:
        if s.name in ("slirp4netns", "pasta") and not shutil.which(
                "slirp4netns" if s.name == "slirp4netns" else "pasta"):
            s.reason = f"{s.name} is not installed (bench/install-deps)"
            continue
        try:
            s.setup()
            print(f"system {s.name}: ready", flush=True)
        except (BenchError, OSError, subprocess.SubprocessError) as e:
            s.reason = f"cannot run here: {e}"
            print(f"system {s.name}: {s.reason}", flush=True)
            s.teardown()


def plan(pattern):
    """(name, direction, function, metrics) to run, in order."""
    return [(name, d, fn, metrics) for name, fn, metrics in workloads.ALL
            for d in workloads.DIRECTIONS
            if re.search(pattern, f"{name}/{d}")]


def measure(ctx, results, system, name, direction, fn, metrics):
    if system.reason:
        for m in metrics:
            results.fail(m, direction, system.name, system.reason)
        return
    t0 = time.monotonic()
    try:
        got = fn(ctx, system, direction)
    except (BenchError, OSError, ValueError, KeyError) as e:
        msg = str(e) or type(e).__name__
        print(f"  {name}/{direction} {system.name}: ERROR {msg}", flush=True)
        for m in metrics:
            results.fail(m, direction, system.name, msg)
        return
    for m, (value, unit) in got.items():
        results.add(m, direction, system.name, value, unit)
    shown = ", ".join(f"{m} {report.fmt(v)} {u}" for m, (v, u) in got.items())
    print(f"  {name}/{direction} {system.name}: {shown} "
          f"({time.monotonic() - t0:.1f} s)", flush=True)


def run_all(ctx, syss, todo, results):
    for rep in range(ctx.repeats):
        print(f"repeat {rep + 1}/{ctx.repeats}", flush=True)
        # Round-robin over systems, starting one further each repeat, so
        # that drifting machine load hits every system alike.
        order = syss[rep % len(syss):] + syss[:rep % len(syss)]
        for name, direction, fn, metrics in todo:
            for s in order:
                measure(ctx, results, s, name, direction, fn, metrics)


def commit():
    r = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def raise_nofile():
    """As many descriptors as allowed for everything started (inherited):
    NOFILE where the hard limit may be raised (CAP_SYS_RESOURCE), else
    the hard limit."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    raise_nofile()
    ctx = Context(args)
    check_tools(ctx)
    os.environ["PVC_BUILD"] = ctx.build
    started = datetime.datetime.now(datetime.timezone.utc)
    outdir = os.path.join(args.out, started.strftime("%Y%m%dT%H%M%SZ"))
    todo = plan(args.workloads)
    if not todo:
        sys.exit(f"bench/run: no workload matches '{args.workloads}'")
    syss = make_systems(ctx, args.systems)
    results = report.Results([s.name for s in syss])
    meta = {"started": started.isoformat(timespec="seconds"),
            "commit": commit(), "repeats": ctx.repeats,
            "seconds": ctx.seconds, "idle_conns": ctx.idle_conns,
            "idle_window_s": ctx.idle_window_s, "quick": ctx.quick,
            "machine": f"{os.cpu_count()} CPUs, {platform.release()}",
            "notes": ctx.notes}
    status = 0
    try:
        setup_systems(ctx, syss)
        run_all(ctx, syss, todo, results)
    except Stop as e:
        print(f"bench/run: stopped by {e}; writing what was measured",
              flush=True)
        ctx.notes.append(f"interrupted by {e}: partial results")
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for s in reversed(syss):
            try:
                s.teardown()
            except Exception as e:  # keep tearing the others down
                print(f"teardown {s.name}: {e}", file=sys.stderr)
        ctx.procs.stop_all()
        os.makedirs(outdir, exist_ok=True)
        meta["ended"] = datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec="seconds")
        table = report.write_all(results, meta, outdir)
        if args.keep_logs:
            shutil.copytree(ctx.logdir, os.path.join(outdir, "logs"))
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    print()
    print(table)
    print(f"results: {outdir}")
    return status
