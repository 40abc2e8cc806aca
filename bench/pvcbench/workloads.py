"""The workloads.  Each runs one measurement of one system in one
direction ("client": the program in the system is the client, its peer
the server; "server": the other way round) and returns
{metric: (value, unit)}, or raises BenchError (an error row).

The program in the system and its peer are the same binaries for every
system: iperf3 for bulk transfers, and bench/src's tools (pvcb-echo,
pvcb-rr, pvcb-connect, pvcb-hold) for the rest."""

import json
import re
import time

from .procs import BenchError, cpu_ticks, pss_kib

DIRECTIONS = ("client", "server")
RR_SIZE = 64
CONNECT_CONCURRENCY = 4
# Set-up margins: a server must listen within SERVER_READY_S; a client
# may run its duration plus CLIENT_SLACK_S.
SERVER_READY_S = 30
CLIENT_SLACK_S = 30


class Roles:
    """Who runs where for one system and direction: the server's command
    prefix and bind address, the client's prefix and target address."""

    def __init__(self, system, direction):
        if direction == "client":
            self.port = system.client_port
            self.server_wrap, self.server_bind = system.peer, system.peer_bind
            self.client_wrap, self.target = system.guest, system.peer_addr
            self.guest_is_server = False
        else:
            self.port = system.server_port
            self.server_wrap, self.server_bind = system.guest, system.guest_bind
            self.client_wrap, self.target = system.peer, system.guest_addr
            self.guest_is_server = True


def with_server(ctx, system, direction, server_argv, ready, client_argv,
                name):
    """Start the server (argv built from bind address and port), wait for
    its ready line, run the client to its end: the client's stdout."""
    roles = Roles(system, direction)
    procs = ctx.procs
    server = procs.start(roles.server_wrap(
        server_argv(roles.server_bind, roles.port)), f"{name}-server")
    try:
        server.wait_line(ready, SERVER_READY_S)
        return procs.run(roles.client_wrap(
            client_argv(roles.target, roles.port)), f"{name}-client",
            ctx.seconds + CLIENT_SLACK_S)
    finally:
        procs.stop(server)


def bulk(streams):
    def run(ctx, system, direction):
        def server(bind, port):
            return ["iperf3", "-s", "-1", "-B", bind, "-p", str(port),
                    "--forceflush"]

        def client(target, port):
            return ["iperf3", "-c", target, "-p", str(port), "-t",
                    str(ctx.seconds), "-P", str(streams), "-J"]

        out = with_server(ctx, system, direction, server,
                          r"Server listening", client, f"bulk-{streams}")
        try:
            report = json.loads(out)
            bps = report["end"]["sum_received"]["bits_per_second"]
        except (ValueError, KeyError) as e:
            raise BenchError(f"iperf3 report unreadable ({e}): {out[-300:]}")
        if report.get("error"):
            raise BenchError(f"iperf3: {report['error']}")
        return {f"bulk-{streams}": (bps / 1e9, "Gbit/s")}
    return run


def echo_server(ctx):
    return lambda bind, port: [ctx.tool("pvcb-echo"), bind, str(port)]


def rr(ctx, system, direction):
    def client(target, port):
        return [ctx.tool("pvcb-rr"), target, str(port), str(RR_SIZE),
                str(ctx.seconds)]

    out = with_server(ctx, system, direction, echo_server(ctx),
                      r"^listening", client, "rr-64")
    r = parse_json(out, "pvcb-rr")
    return {"rr-64": (r["rtps"], "round trips/s"),
            "rr-64-p50": (r["p50_us"], "µs"),
            "rr-64-p99": (r["p99_us"], "µs")}


def connect(ctx, system, direction):
    def client(target, port):
        return [ctx.tool("pvcb-connect"), target, str(port),
                str(ctx.seconds), str(CONNECT_CONCURRENCY)]

    out = with_server(ctx, system, direction, echo_server(ctx),
                      r"^listening", client, "connect")
    r = parse_json(out, "pvcb-connect")
    if r["errors"]:
        ctx.note(f"connect/{direction} {system.name}: {r['errors']} failed "
                 f"cycles ({r['first_error']})")
    return {"connect": (r["cps"], "connections/s")}


def parse_json(out, what):
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"{what}: unreadable output: {out[-300:]}")


def idle(ctx, system, direction):
    """N idle connections held by the program in the system (pvcb-hold as
    client, pvcb-echo as server): once all are held, the memory of that
    program and of the system's helpers, and their CPU over a window."""
    n = ctx.idle_conns
    roles = Roles(system, direction)
    procs = ctx.procs
    server = procs.start(roles.server_wrap(
        [ctx.tool("pvcb-echo"), roles.server_bind, str(roles.port),
         str(n)]), "idle-server")
    client = None
    try:
        server_pid = int(server.wait_line(r"^listening (\d+)",
                                          SERVER_READY_S).group(1))
        client = procs.start(roles.client_wrap(
            [ctx.tool("pvcb-hold"), roles.target, str(roles.port), str(n)]),
            "idle-client")
        m = wait_progress(ctx, client, r"^ready \d+ (\d+)", r"^failed .*",
                          r"^connected ")
        client_pid = int(m.group(1))
        # All accepted by the server program, not only queued.
        wait_progress(ctx, server, rf"^held {n}$", r"^stopped .*",
                      r"^held ")
        guest_pid = server_pid if roles.guest_is_server else client_pid
        pids = [guest_pid] + system.helper_pids()
        return measure_idle(ctx, pids, n)
    except BenchError as e:
        # A server that stopped accepting explains a stalled client.
        server.drain()
        stopped = [l for l in server.lines if l.startswith("stopped ")]
        held = [l for l in server.lines if l.startswith("held ")]
        if stopped:
            raise BenchError(f"{server.name}: {stopped[-1]} (of {n})") from e
        if held:
            raise BenchError(f"{e} (the server: {held[-1]})") from e
        raise
    finally:
        if client:
            procs.stop(client)
        procs.stop(server)


def wait_progress(ctx, proc, done, failed, progress):
    """Wait for proc's done line (its match), through its progress lines:
    BenchError on its failed line, or when no line came for
    ctx.idle_stall_s (a system that accepts slowly: slirp4netns listens
    with a backlog of 1), or after ctx.idle_setup_s in all."""
    deadline = time.monotonic() + ctx.idle_setup_s
    while True:
        wait = min(ctx.idle_stall_s, max(deadline - time.monotonic(), 0))
        try:
            line = proc.wait_line(f"{done}|{failed}|{progress}",
                                  wait).string
        except BenchError as e:
            if proc.popen.poll() is not None:
                raise  # it died: its own message says more
            last = [l for l in proc.lines if re.search(progress, l)]
            where = f"at \"{last[-1]}\"" if last else "before any progress"
            raise BenchError(
                f"{proc.name} stalled {where} (of {ctx.idle_conns}): "
                f"nothing new within {wait:.0f} s") from e
        m = re.search(done, line)
        if m:
            return m
        if re.search(failed, line):
            raise BenchError(f"{proc.name}: {line} (of {ctx.idle_conns})")


def measure_idle(ctx, pids, n):
    # What setting up 10,000 connections left behind is not idle time.
    time.sleep(ctx.idle_settle_s)
    before = sum(cpu_ticks(p) for p in pids)
    time.sleep(ctx.idle_window_s)
    ticks = sum(cpu_ticks(p) for p in pids) - before
    kib = sum(pss_kib(p) for p in pids)
    return {"idle-10k-mem": (kib / n, "KiB/conn"),
            "idle-10k-cpu": (ticks, f"ticks/{ctx.idle_window_s:g} s")}


# Name (what --workloads matches, with "/direction"), function, and the
# metrics it yields (rows to write when it fails).
ALL = [
    ("bulk-1", bulk(1), ["bulk-1"]),
    ("bulk-4", bulk(4), ["bulk-4"]),
    ("rr-64", rr, ["rr-64", "rr-64-p50", "rr-64-p99"]),
    ("connect", connect, ["connect"]),
    ("idle-10k", idle, ["idle-10k-mem", "idle-10k-cpu"]),
]

# Higher is better for these units; lower for the others (latency,
# memory, CPU).
HIGHER_IS_BETTER = {"Gbit/s", "round trips/s", "connections/s"}
