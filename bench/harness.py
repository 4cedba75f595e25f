"""Processes of a benchmark run: servers, origins, load generators, and what /proc says.

The server under test (p8 or Pushpin, with its whole process tree) runs on CPU 0; load
generators, nginx and the WebSocket-over-HTTP origin run on CPU 1 (``taskset``). Every
process is started here, on free loopback ports, and stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_CPU = 0
LOAD_CPU = 1
SATURATED = 0.95
"""A load generator using this share of one core (or more) makes its row invalid."""

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent


# --- limits, CPUs, ports -------------------------------------------------------------------

def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE to the hard limit (inherited by every child); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def can_pin() -> bool:
    """Pinning needs taskset and both CPUs 0 and 1."""
    return shutil.which("taskset") is not None and {0, 1} <= os.sched_getaffinity(0)


def pinned(cmd: Sequence[str], cpu: int | str | None) -> list[str]:
    """``cmd`` under taskset: one CPU, or a list such as ``"0,1"``."""
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else list(cmd)


def workers_of(kind: str) -> int:
    """How many workers a server kind runs: ``"p8-w2"`` is p8 with ``[server] workers =
    2``; ``"p8"`` and ``"pushpin"`` are one."""
    return int(kind.removeprefix("p8-w")) if kind.startswith("p8-w") else 1


def server_cpus(kind: str, pin: bool) -> str | None:
    """Where ``kind`` runs when pinned: CPU 0, or CPUs 0 to N-1 for N workers (the
    load CPU among them: they share it with the load generators)."""
    if not pin:
        return None
    cpus = os.cpu_count() or 1
    return ",".join(str((SERVER_CPU + i) % cpus) for i in range(min(workers_of(kind), cpus)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before port {port} opened")
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {port} did not open within {timeout} s")
        time.sleep(0.05)


def http_get(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
    """A one-shot GET over a raw socket: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# --- /proc ---------------------------------------------------------------------------------

def _stat(pid: int) -> list[bytes] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2:].split()  # fields from 3 (state) on


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes (their threads included), from /proc/<pid>/stat."""
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def rss_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


def fd_count(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# --- processes -----------------------------------------------------------------------------

class Proc:
    """A child process started by the harness, stopped by its own pid (and its tree's)."""

    def __init__(self, name: str, cmd: Sequence[str], *, log: Path, cwd: Path | None = None,
                 stdin: int | None = subprocess.DEVNULL, stdout: int | None = None) -> None:
        self.name = name
        self.log = log
        self._logf = log.open("ab")
        self.popen = subprocess.Popen(
            list(cmd), cwd=cwd, stdin=stdin,
            stdout=stdout if stdout is not None else self._logf, stderr=self._logf,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.pid = self.popen.pid
        self._known: set[int] = {self.pid}
        self._last_cpu = 0.0

    def pids(self) -> list[int]:
        pids = tree_pids(self.pid) if self.popen.poll() is None else []
        self._known.update(pids)
        return pids

    def cpu(self) -> float:
        """CPU seconds of the tree; once it has exited, the last value read."""
        pids = self.pids()
        if pids:
            self._last_cpu = max(self._last_cpu, cpu_seconds(pids))
        return self._last_cpu

    def rss(self) -> int:
        return rss_bytes(self.pids())

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.pids()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        for pid in self._known:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if _stat(pid) is not None:
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._logf.close()


@dataclass
class Route:
    """One route of the server under test: everything to ``target``."""

    target: str = "test"  # "test" or "host:port"
    over_http: bool = False


@dataclass
class Server:
    """The server under test, ready on ``port`` (clients) and ``control`` (publishing)."""

    kind: str  # "p8" or "pushpin"
    proc: Proc
    port: int
    control: int
    workdir: Path
    gc_report: Path | None = None
    scratch: Path | None = None  # removed on stop
    profile_to: Path | None = None  # py-spy output stem while a Window is open
    _profiles: int = 0

    def cpu(self) -> float:
        return self.proc.cpu()

    def rss(self) -> int:
        return self.proc.rss()

    def fds(self) -> int:
        return fd_count(self.proc.pids())

    def full_gc_pause(self, timeout: float = 30.0) -> dict[str, float] | None:
        """p8 only: ask the process for a timed ``gc.collect()``; None for Pushpin."""
        if self.gc_report is None:
            return None
        self.gc_report.unlink(missing_ok=True)
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.gc_report.exists():
                text = self.gc_report.read_text()
                if text.endswith("\n"):
                    return dict(json.loads(text))
            time.sleep(0.02)
        raise TimeoutError("p8 did not report its GC pause")

    def stop(self) -> None:
        self.proc.stop()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _ready(server: Server, timeout: float, workers: int = 1) -> Server:
    """Wait until the server answers GET / (and each of its ``workers`` has reported)."""
    proc = server.proc
    try:
        wait_port(server.port, timeout, proc.popen)
        wait_port(server.control, timeout, proc.popen)
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, _ = http_get(server.port, "/")
                if status == 200 and (workers == 1 or _workers_ready(server) == workers):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or not proc.alive():
                raise RuntimeError(f"{server.kind} never answered GET / with 200; "
                                   f"see {proc.log}")
            time.sleep(0.1)
    except BaseException:
        proc.stop()
        raise
    return server


def _workers_ready(server: Server) -> int:
    with socket.create_connection(("127.0.0.1", server.control), timeout=5) as s:
        s.sendall(b"GET /workers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    workers = json.loads(data.partition(b"\r\n\r\n")[2])["workers"]
    return sum(w["ready"] for w in workers)


def start_p8(workdir: Path, route: Route, cpu: int | str | None, *, workers: int = 1,
             timeout: float = 30.0, extra: str = "") -> Server:
    """p8 through ``bench.p8_server`` (``p8 run`` plus a SIGUSR1-timed full GC), with
    ``[server] workers``.

    :param extra: TOML appended to the config (more tables, more ``[[routes]]``).
    """
    port, control, pull, sub, command = (free_port() for _ in range(5))
    target = route.target if route.target == "test" else f"http://{route.target}"
    config = textwrap.dedent(f"""\
        # p8, equivalent to the Pushpin config beside it (pushpin.conf, routes)
        [server]
        listen = ["127.0.0.1:{port}"]
        workers = {workers}

        [control]
        listen = "127.0.0.1:{control}"

        [plugins.zmq_pubsub]
        pull = "tcp://127.0.0.1:{pull}"
        sub = ["tcp://127.0.0.1:{sub}"]
        command = "tcp://127.0.0.1:{command}"

        [[routes]]
        host = "*"
        target = "{target}"
        over_http = {"true" if route.over_http else "false"}
        """)
    path = workdir / "p8.toml"
    path.write_text(config + extra)
    gc_report = workdir / "p8-gc.json"
    cmd = [PYTHON, "-m", "bench.p8_server", "--config", str(path),
           "--gc-report", str(gc_report)]
    proc = Proc("p8", pinned(cmd, cpu), log=workdir / "p8.log", cwd=ROOT)
    return _ready(Server("p8", proc, port, control, workdir, gc_report), timeout, workers)


PUSHPIN_CONF = """\
# Pushpin 1.36's shipped pushpin.conf with the ports moved to free ones, rundir/logdir in a
# temporary directory, zurl run by the runner, and no message_rate/message_hwm (p8 has no
# delivery rate limit, so Pushpin runs without one too: its code default, unlimited).
[global]
include={{libdir}}/internal.conf
rundir={rundir}
ipc_prefix=pushpin-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:{port}
logdir={logdir}
log_level=2
client_buffer_size=8192
client_maxconn=50000

[proxy]
routesfile=routes
debug=false
auto_cross_origin=false
accept_x_forwarded_protocol=false
set_x_forwarded_protocol=proto-only
x_forwarded_for=
x_forwarded_for_trusted=
orig_headers_need_mark=
accept_pushpin_route=false
log_from=false
log_user_agent=false
sig_iss=pushpin
sig_key=changeme
upstream_key=
updates_check=off
zurl_out_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in
zurl_out_stream_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in-stream
zurl_in_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-out

[handler]
push_in_spec=tcp://127.0.0.1:{pull}
push_in_sub_specs=tcp://127.0.0.1:{sub}
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port={control}
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
command_spec=tcp://127.0.0.1:{command}
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
"""


def pushpin_available() -> bool:
    return shutil.which("pushpin") is not None


def start_pushpin(workdir: Path, route: Route, cpu: int | str | None, *,
                  timeout: float = 30.0) -> Server:
    port, control, pull, sub, command = (free_port() for _ in range(5))
    rundir = Path(tempfile.mkdtemp(prefix="pp-"))  # IPC socket paths must stay short
    (workdir / "log").mkdir(exist_ok=True)
    conf = workdir / "pushpin.conf"
    conf.write_text(PUSHPIN_CONF.format(rundir=rundir, logdir=workdir / "log",
                                        port=port, control=control, pull=pull, sub=sub,
                                        command=command))
    target = route.target + (",over_http" if route.over_http else "")
    (workdir / "routes").write_text(f"* {target}\n")
    cmd = ["pushpin", "--config", str(conf)]
    proc = Proc("pushpin", pinned(cmd, cpu), log=workdir / "pushpin.log", cwd=workdir)
    try:
        server = _ready(Server("pushpin", proc, port, control, workdir, scratch=rundir),
                        timeout)
    except BaseException:
        shutil.rmtree(rundir, ignore_errors=True)
        raise
    time.sleep(0.5)  # the handler's ZeroMQ links to the proxy settle after the first request
    return server


def start_server(kind: str, workdir: Path, route: Route, cpu: int | str | None) -> Server:
    if kind == "pushpin":
        return start_pushpin(workdir, route, cpu)
    return start_p8(workdir, route, cpu, workers=workers_of(kind))


NGINX_CONF = """\
# nginx as the fastest origin this machine has: one worker, a fixed 200 from memory
worker_processes 1;
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "hello from the origin\\n";
        }}
    }}
}}
"""


def nginx_available() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


def start_nginx(workdir: Path, cpu: int | None) -> tuple[Proc, int]:
    port = free_port()
    ndir = workdir / "nginx"
    (ndir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = ndir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=ndir, port=port))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = Proc("nginx", pinned([binary, "-c", str(conf), "-p", str(ndir)], cpu),
                log=ndir / "nginx.log")
    return _serving(proc, port)


def start_woh_origin(workdir: Path, cpu: int | None) -> tuple[Proc, int]:
    port = free_port()
    proc = Proc("woh-origin", pinned([PYTHON, "-m", "bench.woh_origin", "--port", str(port)],
                                     cpu), log=workdir / "woh-origin.log", cwd=ROOT)
    return _serving(proc, port)


def _serving(proc: Proc, port: int) -> tuple[Proc, int]:
    """``proc`` once it listens on ``port`` (10 s at most); stopped if it never does."""
    try:
        wait_port(port, 10, proc.popen)
    except BaseException:
        proc.stop()
        raise
    return proc, port


# --- load generators -----------------------------------------------------------------------

class LoadGen:
    """A load-generator process (``python -m bench.loadgen``) speaking JSON lines.

    It prints ``{"event": ...}`` lines on stdout; the harness answers with command lines on
    its stdin. Its CPU time is read from /proc while it runs.
    """

    def __init__(self, scenario: str, params: dict[str, Any], *, workdir: Path,
                 cpu: int | None) -> None:
        cmd = [PYTHON, "-m", "bench.loadgen", scenario, json.dumps(params)]
        self.proc = Proc(f"loadgen-{scenario}", pinned(cmd, cpu),
                         log=workdir / f"loadgen-{scenario}.log", cwd=ROOT,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.proc.popen.stdout
        assert stdout is not None
        for line in stdout:
            self._lines.put(line.decode())
        self._lines.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """Wait for the next event; it must be ``event`` (an ``error`` event raises)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"load generator: no {event!r} within {timeout:.0f} s; "
                                   f"see {self.proc.log}") from None
            if line is None:
                raise RuntimeError(f"load generator exited before {event!r}; "
                                   f"see {self.proc.log}")
            msg = json.loads(line)
            if msg.get("event") == "error":
                raise RuntimeError(f"load generator failed: {msg.get('error')}")
            if msg.get("event") != event:
                raise RuntimeError(f"load generator: expected {event!r}, got {msg!r}")
            return dict(msg)

    def send(self, command: str, **data: Any) -> None:
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.write((json.dumps({"cmd": command, **data}) + "\n").encode())
        stdin.flush()

    def cpu(self) -> float:
        return self.proc.cpu()

    def finish(self, timeout: float = 30.0) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.send("exit")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.popen.wait(timeout)
        self.proc.stop()
        for pipe in (self.proc.popen.stdin, self.proc.popen.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@dataclass
class Window:
    """CPU seconds of the server and of everything on the load CPU over a wall interval.

    While open, a thread samples both every 50 ms, so :meth:`narrow` can cut the window
    down to an interval the load generator reports afterwards (``time.monotonic`` is one
    clock for every process here).
    """

    server: Server
    load: Sequence[Proc | LoadGen]
    t0: float = 0.0
    wall: float = 0.0
    server_cpu: float = 0.0
    load_cpu: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    _p0: dict[str, float] = field(default_factory=dict)
    _samples: list[tuple[float, float, float]] = field(default_factory=list)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _spy: subprocess.Popen[bytes] | None = None

    def start(self) -> Window:
        if self.server.profile_to is not None:
            self._spy = _py_spy(self.server)
        server_pids = self.server.proc.pids()
        load_pids = [pid for p in self.load for pid in self._proc(p).pids()]
        self._p0 = {self._name(p): p.cpu() for p in self.load}
        self.t0 = time.monotonic()
        self._samples = [(self.t0, cpu_seconds(server_pids), cpu_seconds(load_pids))]
        self._thread = threading.Thread(target=self._sample, args=(server_pids, load_pids),
                                        daemon=True)
        self._thread.start()
        return self

    def _sample(self, server_pids: list[int], load_pids: list[int]) -> None:
        while not self._done.wait(0.05):
            self._samples.append((time.monotonic(), cpu_seconds(server_pids),
                                  cpu_seconds(load_pids)))

    def stop(self) -> Window:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.wall = time.monotonic() - self.t0
        self.server_cpu = self.server.cpu() - self._samples[0][1]
        self.parts = {self._name(p): p.cpu() - self._p0[self._name(p)] for p in self.load}
        self.load_cpu = sum(self.parts.values())
        self._samples.append((self.t0 + self.wall, self._samples[0][1] + self.server_cpu,
                              self._samples[0][2] + self.load_cpu))
        if self._spy is not None:
            self._spy.send_signal(signal.SIGINT)
            try:
                self._spy.wait(30)
            except subprocess.TimeoutExpired:
                self._spy.kill()
            self._spy = None
        return self

    def narrow(self, t0: float, t1: float) -> Window:
        """Keep only [t0, t1] (monotonic seconds), interpolating between samples."""
        a, b = self._at(t0), self._at(t1)
        self.t0, self.wall = t0, max(t1 - t0, 1e-9)
        self.server_cpu, self.load_cpu = b[0] - a[0], b[1] - a[1]
        return self

    def _at(self, t: float) -> tuple[float, float]:
        samples = self._samples
        for (ta, sa, la), (tb, sb, lb) in itertools.pairwise(samples):
            if ta <= t <= tb:
                f = (t - ta) / (tb - ta) if tb > ta else 0.0
                return sa + f * (sb - sa), la + f * (lb - la)
        edge = samples[0] if t < samples[0][0] else samples[-1]
        return edge[1], edge[2]

    @staticmethod
    def _proc(p: Proc | LoadGen) -> Proc:
        return p.proc if isinstance(p, LoadGen) else p

    @classmethod
    def _name(cls, p: Proc | LoadGen) -> str:
        return cls._proc(p).name

    @property
    def server_util(self) -> float:
        return self.server_cpu / self.wall if self.wall else 0.0

    @property
    def load_util(self) -> float:
        return self.load_cpu / self.wall if self.wall else 0.0


def _py_spy(server: Server) -> subprocess.Popen[bytes]:
    """py-spy recording the server (collapsed stacks), on the load CPU, until SIGINT."""
    assert server.profile_to is not None
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    server._profiles += 1
    out = server.profile_to.with_name(f"{server.profile_to.name}-{server._profiles}.txt")
    cmd = pinned([spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--rate",
                  "250", "--format", "raw", "--output", str(out)],
                 LOAD_CPU if can_pin() else None)
    popen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                             stderr=(server.workdir / "py-spy.log").open("ab"))
    time.sleep(0.5)  # attached before the measurement starts
    return popen


@contextlib.contextmanager
def workspace(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="p8bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
