"""``p8 import-pushpin``: Pushpin's configuration becomes a p8 file that ``p8 check`` takes."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from p8core.app import App
from p8core.cli import main
from p8core.proxy.routes import parse_routes_file
from p8core.testing import self_signed_cert

P8 = [sys.executable, "-m", "p8core.cli"]
PUSHPIN_ETC = Path("/etc/pushpin")


def p8(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*P8, *args], capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not (PUSHPIN_ETC / "pushpin.conf").is_file(),
                    reason="Pushpin's example config is not installed here")
def test_pushpins_example_config_imports_and_checks(tmp_path: Path) -> None:
    for name in ("pushpin.conf", "routes"):
        shutil.copy(PUSHPIN_ETC / name, tmp_path / name)
    out = tmp_path / "p8.toml"
    imported = p8("import-pushpin", str(tmp_path / "pushpin.conf"), "-o", str(out))
    assert imported.returncode == 0, imported.stderr
    assert "not carried over: [runner] log_level = 2" in imported.stderr
    config = tomllib.loads(out.read_text())
    assert config["server"]["listen"] == ["0.0.0.0:7999"]
    assert config["control"]["listen"] == "127.0.0.1:5561"
    assert config["routes"] == [{"target": "test"}]
    checked = p8("check", "--config", str(out))
    assert checked.returncode == 0, checked.stderr
    assert "routes:\n  *,*,*,* -> test" in checked.stdout


CONF = """\
[global]
rundir=/run/pp
ipc_prefix=pp-
port_offset=10

[runner]
http_port=8000,[::1]:8001
https_ports=8443
local_ports={rundir}/{ipc_prefix}server
client_maxconn=1000
log_level=3

[proxy]
routesfile=my-routes
debug=true
auto_cross_origin=false
x_forwarded_for=truncate:0,append
x_forwarded_for_trusted=append
set_x_forwarded_protocol=true
accept_x_forwarded_protocol=true
sig_iss=me
sig_key=base64:aGk=
accept_pushpin_route=true
some_future_key=1

[handler]
push_in_spec=tcp://127.0.0.1:5560
push_in_sub_specs=tcp://127.0.0.1:5562,ipc://{rundir}/sub
push_in_sub_connect=true
push_in_http_addr=0.0.0.0
push_in_http_port=5561
push_in_max_body_size=5000
message_wait=2000
subscription_linger=30
"""

ROUTES = """\
# every option p8 takes
api.example.com,path_beg=/api/,replace_beg=/,aco,jsonp_mode=basic,jsonp_cb=cb 127.0.0.1:8080
*,path_beg=/v1/,path_rem=3,header=X-A:1,header=X-A:2,as_host=in:81,debug,log_level=3 a:1 b:2
*,proto=ws,prefix=chat-,session 127.0.0.1:9000,over_http,one_event,sub=lobby,sub=news
*,ssl=yes,sig_iss=x,sig_key=y,no_grip secure.example:443,ssl,insecure
*,path_beg=/zmq zhttpreq/tcp://127.0.0.1:10000
id=only-by-id,"header=X-Q: a, b" test
* test
"""


def test_every_mapped_key_and_route_option_round_trips(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pushpin.conf").write_text(CONF)
    (tmp_path / "my-routes").write_text(ROUTES)
    certs = tmp_path / "runner" / "certs"
    certs.mkdir(parents=True)
    cert, key = self_signed_cert(certs)
    cert.rename(certs / "default.crt")
    key.rename(certs / "default.key")
    out = tmp_path / "p8.toml"
    assert main(["import-pushpin", str(tmp_path / "pushpin.conf"), "-o", str(out)]) == 0
    notes = capsys.readouterr().err
    assert "[proxy] accept_pushpin_route = true: not supported" in notes
    assert "[proxy] some_future_key = 1: unknown to p8, left out" in notes
    config = tomllib.loads(out.read_text())
    assert config["server"] == {
        "listen": ["0.0.0.0:8000", "[::1]:8001"], "tls_listen": ["0.0.0.0:8443"],
        "tls_cert": str(certs / "default.crt"), "tls_key": str(certs / "default.key"),
        "tls_cert_dir": str(certs), "unix_listen": ["/run/pp/pp-server"], "max_connections": 1000}
    assert config["control"] == {"listen": "0.0.0.0:5571", "max_body": 5000}
    assert config["proxy"] == {"debug": True, "auto_cross_origin": False,
                               "accept_x_forwarded_protocol": True, "sig_iss": "me",
                               "sig_key": "base64:aGk=",
                               "x_forwarded_for": ["truncate:0", "append"],
                               "x_forwarded_for_trusted": ["append"],
                               "set_x_forwarded_protocol": "both"}
    assert config["pubsub"] == {"message_wait": 2000, "subscription_linger": 30}
    assert config["plugins"]["zmq_pubsub"] == {
        "pull": "tcp://127.0.0.1:5570", "sub": ["tcp://127.0.0.1:5572", "ipc:///run/pp/sub"],
        "sub_connect": True}

    app = App.from_file(out)  # what `p8 check` does
    direct = parse_routes_file(ROUTES, "routes")
    assert len(app.config.routes) == len(direct)
    for mine, theirs in zip(app.config.routes, direct, strict=True):
        expected = dataclasses.replace(theirs, source=mine.source)
        if theirs.headers == (("X-A", "1"), ("X-A", "2")):
            expected = dataclasses.replace(expected, headers=(("X-A", "2"),))
        assert mine == expected


def test_routes_file_given_explicitly_and_errors_name_the_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf, routes = str(tmp_path / "pushpin.conf"), tmp_path / "other"
    (tmp_path / "pushpin.conf").write_text("[runner]\nhttp_port=7999\n")
    routes.write_text("* test\n*,sockjs=/s test\n")
    assert main(["import-pushpin", conf, str(routes)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"p8: error: {routes}: line 2: 'sockjs' is not supported by p8")
    routes.write_text("* localhost:8080\n")
    assert main(["import-pushpin", conf, str(routes)]) == 0
    assert capsys.readouterr().out.endswith('\n[[routes]]\ntarget = "http://localhost:8080"\n')
    assert main(["import-pushpin", str(tmp_path / "absent.conf")]) == 2
    assert "absent.conf: -: cannot read" in capsys.readouterr().err
