"""Processes the harness starts, and what /proc says about them.

Every process is started in its own session (so that a signal reaches the
whole group: pvcalls-run and the program it runs, ip netns exec and its
program) and registered, so that stop_all() can stop whatever is still
running when the harness ends, however it ends."""

import os
import re
import select
import signal
import subprocess
import time


class BenchError(Exception):
    """A measurement or a set-up step failed: becomes an error row."""


def tail(text, lines=6, width=400):
    """The last lines of text, on one line (for an error row)."""
    kept = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return " | ".join(kept[-lines:])[-width:]


class Proc:
    """One started process: its Popen, its name, its stdout lines."""

    def __init__(self, popen, name, err_path):
        self.popen = popen
        self.name = name
        self.err_path = err_path
        self.lines = []
        self._buf = b""
        self._eof = False
        self._seen = 0  # lines wait_line has looked at

    @property
    def pid(self):
        return self.popen.pid

    def stderr_tail(self):
        try:
            with open(self.err_path, errors="replace") as f:
                return tail(f.read())
        except OSError:
            return ""

    def _fill(self, timeout):
        """Read what stdout has within timeout; False at EOF."""
        if self._eof:
            return False
        fd = self.popen.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], max(timeout, 0))
        if not ready:
            return True
        data = os.read(fd, 65536)
        if not data:
            self._eof = True
            return False
        self._buf += data
        *done, self._buf = self._buf.split(b"\n")
        self.lines += [l.decode(errors="replace") for l in done]
        return True

    def drain(self):
        """Take in whatever stdout has now, without waiting."""
        while self._fill(0) and select.select(
                [self.popen.stdout.fileno()], [], [], 0)[0]:
            pass

    def wait_line(self, pattern, timeout):
        """The first stdout line (from the last one matched on) that
        matches pattern: its match object.  BenchError on EOF/timeout."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = self._seen
        while True:
            while seen < len(self.lines):
                m = regex.search(self.lines[seen])
                seen += 1
                if m:
                    self._seen = seen
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.name}: no '{pattern}' within "
                                 f"{timeout:.0f} s; output: "
                                 f"{tail(chr(10).join(self.lines))} "
                                 f"stderr: {self.stderr_tail()}")
            if not self._fill(left):
                self._seen = seen
                status = self.popen.wait()
                raise BenchError(f"{self.name} exited ({status}) before "
                                 f"'{pattern}': "
                                 f"{tail(chr(10).join(self.lines))} "
                                 f"{self.stderr_tail()}")


class Procs:
    """The registry of started processes."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.live = []
        self.count = 0

    def start(self, argv, name, pass_fds=(), env=None):
        """Start argv: stdout on a pipe (Proc.wait_line), stderr in a log
        file of logdir."""
        self.count += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        err_path = os.path.join(self.logdir, f"{self.count:04d}-{safe}.err")
        with open(err_path, "wb") as err:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=err, start_new_session=True, pass_fds=pass_fds,
                env=env)
        proc = Proc(popen, name, err_path)
        self.live.append(proc)
        return proc

    def stop(self, proc, timeout=10):
        """SIGTERM to the process's group, SIGKILL after timeout; then
        reap it.  Also done for a leader already gone: its group may hold
        children (the program run by pvcalls-run)."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.popen.wait(wait)
                if not group_alive(proc.pid):
                    break
            except subprocess.TimeoutExpired:
                pass
        try:
            proc.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        proc.popen.stdout.close()
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self):
        for proc in reversed(list(self.live)):
            self.stop(proc, timeout=5)

    def run(self, argv, name, timeout, env=None):
        """Run argv to its end: its stdout.  BenchError if it fails or
        outlives timeout (it is then stopped)."""
        proc = self.start(argv, name, env=env)
        deadline = time.monotonic() + timeout
        while proc._fill(deadline - time.monotonic()):
            if time.monotonic() >= deadline:
                self.stop(proc)
                raise BenchError(f"{name}: still running after "
                                 f"{timeout:.0f} s")
        status = proc.popen.wait()
        out = "\n".join(proc.lines + [proc._buf.decode(errors="replace")])
        self.stop(proc)
        if status != 0:
            raise BenchError(f"{name} failed (exit {status}): "
                             f"{tail(out)} {proc.stderr_tail()}")
        return out


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wait_ready_fd(read_fd, name, timeout):
    """Wait for a daemon's "ready" line on the read end of its
    --ready-fd pipe (closed here)."""
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout)
        data = os.read(read_fd, 64) if ready else b""
    finally:
        os.close(read_fd)
    if not data.strip():
        raise BenchError(f"{name} did not become ready")


def cpu_ticks(pid):
    """utime + stime of pid (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def pss_kib(pid):
    """Proportional set size of pid in KiB: resident memory, pages shared
    with other processes (the rings a shim shares with the daemons)
    counted once across them all."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise BenchError(f"no Pss for pid {pid}")
