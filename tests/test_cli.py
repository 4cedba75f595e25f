"""The ``p8`` command as users run it: config errors, check, plugins, run and shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

P8 = [sys.executable, "-m", "p8core.cli"]


def p8(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*P8, *args], capture_output=True, text=True, timeout=30, cwd=cwd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG_ERRORS = {
    "unknown_key": ('[server]\nlisten = ["127.0.0.1:1"]\nmax_conections = 5\n',
                    "server.max_conections: unknown key"),
    "wrong_type": ("[server]\nmax_connections = \"many\"\n",
                   "server.max_connections: expected an integer"),
    "bool_for_int": ("[control]\nmax_body = true\n", "control.max_body: expected an integer"),
    "negative": ("[proxy]\nbackend_timeout = -1\n", "proxy.backend_timeout: must not be negative"),
    "bad_address": ('[server]\nlisten = ["localhost:http"]\n',
                    "server.listen[0]: 'localhost:http' is not a host:port address"),
    "bad_control_address": ('[control]\nlisten = "nowhere"\n', "control.listen"),
    "unknown_table": ("[serverr]\n", "serverr: unknown table"),
    "not_installed": ('[plugins]\nenabled = ["long_pol"]\n',
                      "plugins.enabled: not installed: long_pol"),
    "plugin_table_unowned": ('[plugins]\nenabled = []\n[plugins.zmq_pubsub]\n',
                             "plugins.zmq_pubsub: no enabled plugin owns this table"),
    "toml_syntax": ("[server\n", "invalid TOML"),
    "route_unknown_key": ('[[routes]]\ntarget = "test"\npath = "/x"\n',
                          "routes[0].path: unknown key"),
    "route_no_target": ('[[routes]]\nhost = "a"\n', "routes[0]"),
    "route_unknown_scheme": ('[[routes]]\ntarget = "gopher://x:70"\n',
                             "no enabled plugin handles targets like 'gopher://x:70'"),
    "routes_file_missing": ('[proxy]\nroutes_file = "nope"\n', "proxy.routes_file: cannot read"),
    "duplicate_route": ('[[routes]]\ntarget = "test"\n[[routes]]\ntarget = "test"\n',
                        "routes[1]: condition: same host, proto, ssl and path_prefix as"),
    "xff_rule": ('[proxy]\nx_forwarded_for = ["drop"]\n', "proxy.x_forwarded_for[0]"),
}


RUN_TOO = {"unknown_key", "not_installed", "route_unknown_scheme"}


@pytest.mark.parametrize("kind", sorted(CONFIG_ERRORS))
def test_config_error_is_one_line_naming_file_and_key(kind: str, tmp_path: Path) -> None:
    text, expected = CONFIG_ERRORS[kind]
    path = tmp_path / "p8.toml"
    path.write_text(text)
    # `run` shares `check`'s loading; a few kinds prove it stops the same way.
    for command in ("check", "run") if kind in RUN_TOO else ("check",):
        result = p8(command, "--config", str(path))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"p8: error: {path}"), lines[0]
        assert expected in lines[0]


def test_missing_config_file(tmp_path: Path) -> None:
    result = p8("check", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert "absent.toml: -: cannot read" in result.stderr


def test_bad_routes_file_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "routes").write_text("* test\n*,path_beg=/x\n")
    (tmp_path / "p8.toml").write_text('[proxy]\nroutes_file = "routes"\n')
    result = p8("check", "--config", str(tmp_path / "p8.toml"))
    assert result.returncode == 2
    assert f"{tmp_path / 'routes'}: line 2" in result.stderr


def test_check_prints_routes_from_toml_and_pushpin_syntax(tmp_path: Path) -> None:
    (tmp_path / "routes").write_text("example.com,id=ex localhost:8080,over_http\n")
    (tmp_path / "p8.toml").write_text(
        '[proxy]\nroutes_file = "routes"\n[[routes]]\npath_prefix = "/t"\ntarget = "test"\n')
    result = p8("check", "--config", str(tmp_path / "p8.toml"))
    assert result.returncode == 0, result.stderr
    assert "-> test" in result.stdout
    assert "ex -> http://localhost:8080  [over_http]" in result.stdout
    assert "long_poll (p8-long-poll 0.1.0, enabled)" in result.stdout


def test_plugins_lists_registrations_and_disabled_plugins(tmp_path: Path) -> None:
    (tmp_path / "p8.toml").write_text('[plugins]\nenabled = ["long_poll"]\n')
    result = p8("plugins", "--config", str(tmp_path / "p8.toml"))
    assert result.returncode == 0, result.stderr
    assert "p8core.builtin (p8core 0.1.0, enabled)" in result.stdout
    assert "scheme test" in result.stdout
    assert "http_stream (p8-http-stream 0.1.0, disabled)" in result.stdout


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    port, control = free_port(), free_port()
    (tmp_path / "p8.toml").write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\n[control]\nlisten = "127.0.0.1:{control}"\n'
        # No plugins: their default ZeroMQ ports could be taken by another p8 on this host.
        '[plugins]\nenabled = []\n')
    proc = subprocess.Popen([*P8, "run", "--config", str(tmp_path / "p8.toml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    yield proc, port, control
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_logs_and_stops_cleanly_on_signal(
        running: tuple[subprocess.Popen[str], int, int], signum: int) -> None:
    proc, port, control = running
    resp = httpx.get(f"http://127.0.0.1:{port}/")
    assert resp.text == "Hello from the Pushpin test handler!\n"
    assert httpx.post(f"http://127.0.0.1:{control}/publish/",
                      json={"items": []}).text == "Published\n"
    with socket.create_connection(("127.0.0.1", port)) as held:
        held.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n")
        started = time.monotonic()
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr
        assert time.monotonic() - started < 5
        held.settimeout(2)
        assert held.recv(100) == b"", "open connections are closed at shutdown"
    assert '"event": "request"' in stderr and '"status": 200' in stderr
    assert '"event": "stopped"' in stderr
    lines = stderr.splitlines()
    assert [json.loads(line)["event"] for line in lines if '"shutting_down"' in line] == [
        "shutting_down"], "every module logs as configured, JSON off a terminal"


def test_publish_command(running: tuple[subprocess.Popen[str], int, int]) -> None:
    _, _, control = running
    ok = p8("publish", "--url", f"http://127.0.0.1:{control}", "chan", "hello", "--id", "1")
    assert (ok.returncode, ok.stdout) == (0, "Published\n")
    bad = p8("publish", "--url", f"http://127.0.0.1:{control}", "chan")
    assert bad.returncode == 1 and "must specify content" in bad.stderr
