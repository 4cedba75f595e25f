"""Client listeners: TLS with a certificate made here, Unix sockets, IPv6."""

from __future__ import annotations

import socket
import ssl
import stat
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from cryptography import x509

from p8core.app import App
from p8core.errors import ConfigError
from p8core.testing import Reply, run_origin, run_p8, self_signed_cert

pytestmark = pytest.mark.anyio


def tls_config(directory: Path, **server: Any) -> dict[str, Any]:
    cert, key = self_signed_cert(directory)
    return {"plugins": {"enabled": []},
            "server": {"listen": ["127.0.0.1:0"], "tls_listen": ["127.0.0.1:0"],
                       "tls_cert": str(cert), "tls_key": str(key), **server}}


async def test_tls_listener_serves_https_and_routes_by_ssl(tmp_path: Path) -> None:
    config = tls_config(tmp_path)
    reply = Reply(200, [("Content-Type", "text/plain")], b"secure backend\n")
    async with run_origin(lambda r: reply) as origin:
        config["routes"] = [{"ssl": True, "target": origin.target}, {"target": "test"}]
        trust = ssl.create_default_context(cafile=tmp_path / "cert.pem")
        async with run_p8(config) as p8, httpx.AsyncClient(verify=trust) as client:
            resp = await client.get(f"{p8.tls_url}/")
            assert (resp.status_code, resp.text) == (200, "secure backend\n")
            assert resp.http_version == "HTTP/1.1"
            resp = await client.get(f"{p8.url}/")
            assert resp.text == "Hello from the Pushpin test handler!\n"
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await httpx.AsyncClient().get(f"{p8.tls_url}/")


def test_tls_config_errors_name_the_key(tmp_path: Path) -> None:
    config = tls_config(tmp_path)
    del config["server"]["tls_cert"]
    with pytest.raises(ConfigError, match=r"server\.tls_cert: required with tls_listen"):
        App.from_raw(config, "p8.toml")
    config = tls_config(tmp_path, tls_key=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"server\.tls_key: cannot read .*missing\.pem"):
        App.from_raw(config, "p8.toml")
    other = tmp_path / "other"
    other.mkdir()
    config = tls_config(tmp_path, tls_key=str(self_signed_cert(other)[1]))
    with pytest.raises(ConfigError, match=r"server\.tls_key: not a PEM certificate and match"):
        App.from_raw(config, "p8.toml")


async def test_unix_socket_listener(tmp_path: Path) -> None:
    path = tmp_path / "p8.sock"
    config = {"plugins": {"enabled": []},
              "server": {"listen": [], "unix_listen": ["p8.sock"], "unix_mode": 0o660}}
    async with run_p8(config, base_dir=tmp_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        async with httpx.AsyncClient(transport=transport) as client:
            resp = await client.get("http://p8.local/")
            assert resp.text == "Hello from the Pushpin test handler!\n"
    assert not path.exists(), "the socket file is removed at shutdown"


def test_listener_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"server\.listen: needs at least one address"):
        App.from_raw({"server": {"listen": []}}, "p8.toml")
    with pytest.raises(ConfigError, match=r"server\.unix_listen\[0\]: must be a path of 1"):
        App.from_raw({"server": {"unix_listen": ["x" * 200]}}, "p8.toml")
    with pytest.raises(ConfigError, match=r"server\.unix_mode: must be a file mode"):
        App.from_raw({"server": {"unix_mode": 0o1777}}, "p8.toml")
    with pytest.raises(ConfigError, match=r"server\.tls_listen\[0\]: 'x' is not a host:port"):
        App.from_raw({"server": {"tls_listen": ["x"], "tls_cert": "c"}}, "p8.toml")


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_listener() -> None:
    config = {"plugins": {"enabled": []}, "server": {"listen": ["[::1]:0"]}}
    async with run_p8(config) as p8, httpx.AsyncClient() as client:
        resp = await client.get(f"http://[::1]:{p8.bound.port}/")
        assert resp.text == "Hello from the Pushpin test handler!\n"


async def test_backends_learn_the_client_used_tls_and_forged_claims_are_dropped(
        tmp_path: Path) -> None:
    seen: list[dict[bytes, bytes]] = []

    def record(req: Any) -> Reply:
        seen.append({n: v for n, v in req.headers if n.startswith(b"x-forwarded-proto")})
        return Reply(200, [("Content-Type", "text/plain")], b"ok\n")

    config = tls_config(tmp_path)
    trust = ssl.create_default_context(cafile=tmp_path / "cert.pem")
    forged = {"X-Forwarded-Proto": "https"}
    async with run_origin(record) as origin:
        config["routes"] = [{"target": origin.target}]
        async with run_p8(config) as p8, httpx.AsyncClient(verify=trust) as client:
            await client.get(f"{p8.tls_url}/")
            await client.get(f"{p8.url}/", headers=forged)
        assert seen == [{b"x-forwarded-proto": b"https"}, {}]
        # Behind a TLS-terminating proxy of one's own, the client's claim is believed:
        # it selects the ssl route and is passed on.
        config["proxy"] = {"accept_x_forwarded_protocol": True,
                           "set_x_forwarded_protocol": "both"}
        config["routes"] = [{"ssl": True, "target": origin.target}, {"target": "test"}]
        async with run_p8(config) as p8, httpx.AsyncClient() as client:
            believed = await client.get(f"{p8.url}/", headers=forged)
            plain = await client.get(f"{p8.url}/")
        assert believed.text == "ok\n"
        assert plain.text == "Hello from the Pushpin test handler!\n"
        assert seen[-1] == {b"x-forwarded-proto": b"https", b"x-forwarded-protocol": b"https"}


def test_forwarding_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"proxy\.set_x_forwarded_protocol: expected one of"):
        App.from_raw({"proxy": {"set_x_forwarded_protocol": "yes"}}, "p8.toml")
    with pytest.raises(ConfigError, match=r"proxy\.x_forwarded_for_trusted\[0\]: 'x' is neither"):
        App.from_raw({"proxy": {"x_forwarded_for_trusted": ["x"]}}, "p8.toml")


async def test_per_host_certificates_are_chosen_by_the_name_the_client_sends(
        tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    config = tls_config(tmp_path, tls_cert_dir=str(certs))
    for host in ("api.example.test", "*.example.test"):
        made = certs / host
        made.mkdir(parents=True)
        cert, key = self_signed_cert(made, host)
        cert.rename(certs / f"{host}.crt")
        key.rename(certs / f"{host}.key")
    (certs / "bundle.example.test.crt").write_bytes(  # certificate and key in one file
        (certs / "api.example.test.crt").read_bytes()
        + (certs / "api.example.test.key").read_bytes())
    reply = Reply(200, [("Content-Type", "text/plain")], b"ok\n")

    def served_for(port: int, name: str) -> str:
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                client.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()

    async with run_origin(lambda r: reply) as origin:
        config["routes"] = [{"target": origin.target}]
        async with run_p8(config) as p8:
            port = p8.bound.tls[0]
            got = [await anyio.to_thread.run_sync(served_for, port, name) for name in (
                "api.example.test", "API.example.test", "www.example.test",
                "bundle.example.test", "other.test")]
    assert got == ["CN=api.example.test", "CN=api.example.test", "CN=*.example.test",
                   "CN=api.example.test", "CN=127.0.0.1"]


def test_a_bad_per_host_certificate_stops_start_up_naming_it(tmp_path: Path) -> None:
    config = tls_config(tmp_path, tls_cert_dir="certs")
    with pytest.raises(ConfigError, match=r"server\.tls_cert_dir: not a directory"):
        App.from_raw(config, "p8.toml", tmp_path)
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "x.test.crt").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"server\.tls_cert_dir \(x\.test\.crt\): not a PEM"):
        App.from_raw(config, "p8.toml", tmp_path)
