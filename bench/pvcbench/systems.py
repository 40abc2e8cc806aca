"""The systems a workload runs through.  Each says how to run the program
under test (the guest) and its peer, which addresses each side uses, and
which helper processes (daemons, user-mode network stacks) it adds.

Every namespace and process made here is undone by teardown(); the
harness calls it on every exit path."""

import json
import os
import socket
import subprocess
import time

from .procs import BenchError, wait_ready_fd

LOOPBACK = "127.0.0.1"
ANY = "0.0.0.0"


def sh(argv):
    """Run a set-up command; BenchError with its output if it fails."""
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def new_netns(name):
    """A named network namespace with lo up.  tcp_tw_reuse=1 there, as on
    loopback by default (2): the connect workload measures connection
    set-up, not how fast TIME_WAIT exhausts the ephemeral ports."""
    sh(["ip", "netns", "add", name])
    sh(["ip", "-n", name, "link", "set", "lo", "up"])
    sh(["ip", "netns", "exec", name, "sysctl", "-qw",
        "net.ipv4.tcp_tw_reuse=1"])


def del_netns(name):
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


class System:
    """Native loopback: guest and peer in the harness's namespace."""

    name = "native"
    # Where the guest reaches the peer's server, and where the peer's
    # server binds; where the peer reaches the guest's server, and where
    # the guest's server binds.
    peer_addr = LOOPBACK
    peer_bind = LOOPBACK
    guest_addr = LOOPBACK
    guest_bind = LOOPBACK

    def __init__(self, ctx, ports):
        self.ctx = ctx
        # One port for workloads where the guest is the client, one where
        # it is the server: the servers of one run are gone before the
        # next starts.
        self.client_port, self.server_port = ports
        self.reason = None  # why this system cannot run here

    def setup(self):
        pass

    def teardown(self):
        pass

    def guest(self, argv):
        return list(argv)

    def peer(self, argv):
        return list(argv)

    def helper_pids(self):
        """Processes the system adds to the guest (measured by idle)."""
        return []


class Pvcalls(System):
    """The guest under pvcalls-run --isolate on the simulated platform;
    the daemons are started here, once, with the options the workloads
    need (--max-sockets for idle-10k) plus BENCH_BACKD_OPTS and
    BENCH_FRONTD_OPTS; pvcalls-run finds them running and uses them."""

    name = "pvcalls"
    DOMID = "1"

    def setup(self):
        ctx = self.ctx
        self.sim = os.path.join(ctx.tmp, "sim")
        self.sock = os.path.join(self.sim, f"frontd-{self.DOMID}.sock")
        os.makedirs(self.sim)
        self.simd = self._daemon("simd", [ctx.bin("pvcalls-simd"), "--dir",
                                          self.sim, "--foreground"])
        sh([ctx.bin("pvcalls-simxl"), "--sim-dir", self.sim, "create",
            self.DOMID])
        self.domain = True
        self.backd = self._daemon("backd", [
            ctx.bin("pvcalls-backd"), "--platform", "sim", "--sim-dir",
            self.sim, "--max-sockets", str(max(1024, 2 * ctx.idle_conns))]
            + os.environ.get("BENCH_BACKD_OPTS", "").split())
        self.frontd = self._daemon("frontd", [
            ctx.bin("pvcalls-frontd"), "--platform", "sim", "--sim-dir",
            self.sim, "--domid", self.DOMID, "--socket", self.sock]
            + os.environ.get("BENCH_FRONTD_OPTS", "").split())

    def _daemon(self, name, argv):
        rfd, wfd = os.pipe()
        try:
            proc = self.ctx.procs.start(argv + ["--ready-fd", str(wfd)],
                                        name, pass_fds=(wfd,))
        finally:
            os.close(wfd)
        wait_ready_fd(rfd, name, 20)
        return proc

    def teardown(self):
        procs = self.ctx.procs
        if getattr(self, "frontd", None):
            procs.stop(self.frontd)
        if getattr(self, "domain", False):
            subprocess.run([self.ctx.bin("pvcalls-simxl"), "--sim-dir",
                            self.sim, "destroy", self.DOMID],
                           capture_output=True, timeout=30)
        for name in ("backd", "simd"):
            if getattr(self, name, None):
                procs.stop(getattr(self, name))

    def guest(self, argv):
        return [self.ctx.pvcalls_run, "--isolate", "--platform", "sim",
                "--sim-dir", self.sim, "--socket", self.sock, "--"] + argv

    def helper_pids(self):
        return [self.frontd.pid, self.backd.pid]


class Veth(System):
    """The guest in its own namespace, joined to the peer's namespace by
    a veth pair (as Docker's bridge, without the bridge), MTU 1500 as
    Docker's default.  Addresses from 198.18.0.0/15, the range set aside
    for network benchmarks, only inside these two namespaces."""

    name = "veth"
    peer_addr = peer_bind = "198.18.1.1"
    guest_addr = guest_bind = "198.18.1.2"

    def setup(self):
        tag = self.ctx.tag
        self.gns, self.hns = f"{tag}-vg", f"{tag}-vh"
        gif, hif = f"{tag}g", f"{tag}h"
        for ns in (self.gns, self.hns):
            new_netns(ns)
        sh(["ip", "link", "add", gif, "netns", self.gns, "type", "veth",
            "peer", "name", hif, "netns", self.hns])
        for ns, dev, addr in ((self.gns, gif, self.guest_addr),
                              (self.hns, hif, self.peer_addr)):
            sh(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
            sh(["ip", "-n", ns, "link", "set", dev, "up"])

    def teardown(self):
        for ns in (getattr(self, "gns", None), getattr(self, "hns", None)):
            if ns:
                del_netns(ns)

    def guest(self, argv):
        return ["ip", "netns", "exec", self.gns] + argv

    def peer(self, argv):
        return ["ip", "netns", "exec", self.hns] + argv


class Slirp(System):
    """The guest in a namespace whose only way out is slirp4netns (tap0,
    MTU 65520, its fastest documented setting).  The guest reaches the
    host's loopback at the gateway address (slirp4netns's default);
    the peer reaches the guest's server through a port forwarded on the
    host's loopback (slirp4netns's API, add_hostfwd)."""

    name = "slirp4netns"
    CIDR = "198.18.2.0/24"
    peer_addr = "198.18.2.2"
    guest_bind = ANY

    def setup(self):
        self.ns = f"{self.ctx.tag}-sl"
        new_netns(self.ns)
        self.api = os.path.join(self.ctx.tmp, "slirp.sock")
        rfd, wfd = os.pipe()
        try:
            self.proc = self.ctx.procs.start(
                ["slirp4netns", "--configure", "--mtu=65520",
                 f"--cidr={self.CIDR}", f"--api-socket={self.api}",
                 f"--ready-fd={wfd}", "--netns-type=path",
                 f"/run/netns/{self.ns}", "tap0"], "slirp4netns",
                pass_fds=(wfd,))
        finally:
            os.close(wfd)
        wait_ready_fd(rfd, "slirp4netns", 20)
        self._api({"execute": "add_hostfwd", "arguments": {
            "proto": "tcp", "host_addr": LOOPBACK,
            "host_port": self.server_port, "guest_port": self.server_port}})

    def _api(self, request):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.api)
            s.sendall(json.dumps(request).encode())
            answer = json.loads(s.recv(4096).decode())
        if "error" in answer:
            raise BenchError(f"slirp4netns API: {answer['error']}")

    def teardown(self):
        if getattr(self, "proc", None):
            self.ctx.procs.stop(self.proc)
        if getattr(self, "ns", None):
            del_netns(self.ns)

    def guest(self, argv):
        return ["ip", "netns", "exec", self.ns] + argv

    def helper_pids(self):
        return [self.proc.pid]


class Pasta(System):
    """The guest in a namespace whose only way out is pasta (passt's
    namespace mode, MTU 65520), with its fastest documented path: ports
    forwarded between the namespace's and the host's loopback, which
    pasta splices (-T: guest to host, for the guest as client; -t: host
    to guest, for the guest as server).  No automatic port scanning (it
    would wake pasta every second)."""

    name = "pasta"
    guest_bind = ANY

    def setup(self):
        self.ns = f"{self.ctx.tag}-pa"
        new_netns(self.ns)
        pidfile = os.path.join(self.ctx.tmp, "pasta.pid")
        # As root, pasta switches to nobody, which cannot enter our
        # namespace: --runas 0 keeps root.
        self.proc = self.ctx.procs.start(
            ["pasta", "--runas", "0", "--config-net", "--mtu", "65520",
             "--foreground", "--quiet", "--pid", pidfile,
             "-t", f"{LOOPBACK}/{self.server_port}",
             "-T", str(self.client_port), "-u", "none", "-U", "none",
             "--netns", f"/run/netns/{self.ns}"], "pasta")
        deadline = time.monotonic() + 20
        while not os.path.exists(pidfile):
            if self.proc.popen.poll() is not None:
                raise BenchError(f"pasta exited ({self.proc.popen.returncode}): "
                                 f"{self.proc.stderr_tail()}")
            if time.monotonic() > deadline:
                raise BenchError("pasta did not start within 20 s")
            time.sleep(0.05)

    def teardown(self):
        if getattr(self, "proc", None):
            self.ctx.procs.stop(self.proc)
        if getattr(self, "ns", None):
            del_netns(self.ns)

    def guest(self, argv):
        return ["ip", "netns", "exec", self.ns] + argv

    def helper_pids(self):
        return [self.proc.pid]


ALL = [System, Pvcalls, Veth, Slirp, Pasta]
