"""Route parsing (TOML and Pushpin routes files), selection and path rewriting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p8core.errors import ConfigError
from p8core.proxy.routes import (
    Route,
    Router,
    duplicate_condition,
    parse_routes_file,
    request_host,
    rewrite_path,
    route_from_toml,
)

# The examples of config-and-routes.md §3.6, verbatim.
SPEC_EXAMPLES = """\
# catch-all to a local app
* localhost:8080

# per-host, TLS to the origin, WebSocket-over-HTTP
example.com api.internal:443,ssl,over_http

# path-specific, with channel prefix and stripped prefix
*,path_beg=/chat/,prefix=chat-,replace_beg=/ 127.0.0.1:9000,over_http

# ZeroMQ backends (README example and streaming form)
*,path_beg=/zmq zhttpreq/tcp://127.0.0.1:10000
*,path_beg=/zs  zhttp/tcp://127.0.0.1:10010

# failover between two origins, route id for stats
*,id=main 10.0.0.5:80 10.0.0.6:80
"""


def route(name: str, **fields: object) -> Route:
    """A route whose single target names it, so a match is easy to read."""
    return Route(targets=(name,), **fields)  # type: ignore[arg-type]


def picked(router: Router, host: str, path: str, **flags: bool) -> str | None:
    found = router.match(host, path, **flags)
    return None if found is None else found.targets[0]


def line_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_routes_file(text, "routes")
    return info.value


def toml_error(table: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        route_from_toml(table, "p8.toml", "routes[0]")
    return info.value


# ---- selection: host ----------------------------------------------------------------------


def test_exact_host_routes_are_the_only_candidates() -> None:
    router = Router([route("any"), route("org", host="example.org")])
    assert picked(router, "example.org", "/") == "org"
    assert picked(router, "other.org", "/") == "any"


def test_no_fallback_from_a_hosts_routes_to_the_wildcard() -> None:
    router = Router([route("any"), route("only", host="example.org", path_prefix="/only/")])
    assert picked(router, "example.org", "/only/x") == "only"
    assert picked(router, "example.org", "/other") is None
    assert picked(router, "elsewhere", "/other") == "any"


def test_no_route_at_all() -> None:
    router = Router([route("org", host="example.org")])
    assert picked(router, "example.com", "/") is None
    assert Router([]).match("example.org", "/") is None


def test_host_port_is_ignored_and_case_does_not_matter() -> None:
    router = Router([route("org", host="Example.ORG"), route("any")])
    assert picked(router, "EXAMPLE.org:8080", "/") == "org"
    assert picked(router, "example.org", "/") == "org"


def test_ipv6_hosts() -> None:
    router = Router([route("v6", host="::1"), route("br", host="[fe80::2]"), route("any")])
    assert picked(router, "[::1]:7999", "/") == "v6"
    assert picked(router, "[::1]", "/") == "v6"
    assert picked(router, "[FE80::2]:80", "/") == "br"
    assert picked(router, "[::2]:80", "/") == "any"


def test_missing_host_uses_the_wildcard_routes() -> None:
    router = Router([route("org", host="example.org"), route("any")])
    assert picked(router, "", "/") == "any"


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("example.org", "example.org"),
        ("Example.Org:443", "example.org"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("[::1", "::1"),
        ("", ""),
    ],
)
def test_request_host(header: str, host: str) -> None:
    assert request_host(header) == host


def test_routes_without_host_are_reachable_only_by_id() -> None:
    hidden = route("hidden", host="", id="hidden")
    router = Router([hidden, route("any")])
    assert picked(router, "", "/") == "any"
    assert router.by_id("hidden") is hidden


# ---- selection: proto, ssl, path ----------------------------------------------------------


def test_proto_matches_only_its_kind_of_request() -> None:
    router = Router([route("ws", proto="ws"), route("http", proto="http")])
    assert picked(router, "h", "/", websocket=True) == "ws"
    assert picked(router, "h", "/") == "http"
    only_ws = Router([route("ws", proto="ws")])
    assert picked(only_ws, "h", "/") is None


def test_ssl_matches_only_its_kind_of_connection() -> None:
    router = Router([route("tls", ssl=True), route("plain", ssl=False)])
    assert picked(router, "h", "/", ssl=True) == "tls"
    assert picked(router, "h", "/") == "plain"
    assert picked(Router([route("tls", ssl=True)]), "h", "/") is None


def test_path_prefix_must_match_and_empty_matches_everything() -> None:
    router = Router([route("api", path_prefix="/api/")])
    assert picked(router, "h", "/api/x") == "api"
    assert picked(router, "h", "/api") is None
    assert picked(Router([route("all")]), "h", "") == "all"
    assert picked(Router([route("all")]), "h", "*") == "all"


def test_proto_beats_a_longer_path_prefix() -> None:
    router = Router([route("long", path_prefix="/a/b/c"), route("proto", proto="http")])
    assert picked(router, "h", "/a/b/c/d") == "proto"
    assert picked(router, "h", "/a/b/c/d", websocket=True) == "long"


def test_longer_path_prefix_beats_ssl() -> None:
    router = Router([route("ssl", ssl=True, path_prefix="/a"), route("long", path_prefix="/a/b")])
    assert picked(router, "h", "/a/b", ssl=True) == "long"
    assert picked(router, "h", "/a/x", ssl=True) == "ssl"


def test_ssl_beats_no_ssl_at_equal_path_length() -> None:
    router = Router([route("plain", path_prefix="/a"), route("tls", ssl=True, path_prefix="/b")])
    assert picked(router, "h", "/a") == "plain"
    router = Router([route("any"), route("tls", ssl=True)])
    assert picked(router, "h", "/", ssl=True) == "tls"
    assert picked(router, "h", "/") == "any"


def test_tie_goes_to_the_earlier_route() -> None:
    first = route("first", path_prefix="/a")
    second = route("second", path_prefix="/b")
    router = Router([route("x", path_prefix="/aa"), first, second])
    assert picked(router, "h", "/a") == "first"
    # equal specificity and both eligible: the earlier one
    router = Router([route("one", ssl=True), route("two", ssl=True, path_prefix="")])
    assert picked(router, "h", "/", ssl=True) == "one"


def test_file_order_is_otherwise_irrelevant() -> None:
    routes = [
        route("any"),
        route("api", path_prefix="/api/"),
        route("ws", proto="ws"),
        route("tls", ssl=True),
    ]
    for ordered in (routes, routes[::-1]):
        router = Router(ordered)
        assert picked(router, "h", "/api/x") == "api"
        assert picked(router, "h", "/api/x", websocket=True) == "ws"
        assert picked(router, "h", "/x", ssl=True) == "tls"
        assert picked(router, "h", "/x") == "any"


def test_pushpin_quirk_shorter_prefix_with_ssl_is_not_copied() -> None:
    # Pushpin 1.36 scans in file order comparing field by field, so the later "/a,ssl" route
    # would replace the longer "/a/b" one. The spec marks that [Q]; p8 lets the longer prefix win.
    router = Router([route("long", path_prefix="/a/b"), route("ssl", ssl=True, path_prefix="/a")])
    assert picked(router, "h", "/a/b", ssl=True) == "long"


# ---- route ids ----------------------------------------------------------------------------


def test_default_route_id() -> None:
    assert route("x").route_id == "*,*,*,*"
    full = route("x", host="example.com", proto="ws", ssl=True, path_prefix="/chat/")
    assert full.route_id == "example.com,ws,yes,/chat/"
    assert route("x", ssl=False).route_id == "*,*,no,*"
    assert route("x", id="main", host="a.b").route_id == "main"


def test_by_id_finds_explicit_and_default_ids() -> None:
    main = route("main", id="main", path_prefix="/m")
    chat = route("chat", host="example.com", proto="ws")
    router = Router([main, chat])
    assert router.by_id("main") is main
    assert router.by_id("example.com,ws,*,*") is chat
    assert router.by_id("nope") is None


def test_an_id_used_twice_selects_nothing() -> None:
    router = Router([route("a", id="same"), route("b", id="same", path_prefix="/b")])
    assert router.by_id("same") is None
    assert router.routes[0].targets == ("a",)


# ---- rewrite_path -------------------------------------------------------------------------


def test_rewrite_without_options_keeps_the_path() -> None:
    assert rewrite_path(route("x", path_prefix="/api/"), "/api/x?a=1") == "/api/x?a=1"


def test_replace_beg_replaces_the_prefix() -> None:
    r = route("x", path_prefix="/api/", replace_beg="/")
    assert rewrite_path(r, "/api/x") == "/x"
    assert rewrite_path(r, "/api/x?y=/api/") == "/x?y=/api/"
    assert rewrite_path(route("x", path_prefix="/v1", replace_beg="/v2"), "/v1/a") == "/v2/a"


def test_replace_beg_empty_removes_the_prefix() -> None:
    r = route("x", path_prefix="/api", replace_beg="")
    assert rewrite_path(r, "/api/x") == "/x"
    assert rewrite_path(r, "/api") == "/"


def test_replace_beg_without_prefix_prepends() -> None:
    assert rewrite_path(route("x", replace_beg="/base"), "/x") == "/base/x"


def test_replace_beg_leaves_a_path_outside_the_prefix_alone() -> None:
    r = route("x", path_prefix="/api/", replace_beg="/")
    assert rewrite_path(r, "/other") == "/other"


def test_path_rem_removes_leading_characters() -> None:
    r = route("x", path_rem=4)
    assert rewrite_path(r, "/api/x?q") == "/x?q"
    assert rewrite_path(r, "/api") == "/"
    assert rewrite_path(route("x", path_rem=5), "/api/x") == "/x"


# ---- TOML ---------------------------------------------------------------------------------


def test_toml_minimal_route() -> None:
    r = route_from_toml({"target": "http://127.0.0.1:8080"}, "p8.toml", "routes[2]")
    assert r == Route(targets=("http://127.0.0.1:8080",), source="p8.toml: routes[2]")


def test_toml_every_key() -> None:
    r = route_from_toml(
        {
            "host": "Example.COM",
            "path_prefix": "/chat/",
            "target": ["localhost:9000", "HTTPS://b:443", "test", "zhttp+tcp://127.0.0.1:10010"],
            "over_http": True,
            "one_event": True,
            "prefix": "chat-",
            "replace_beg": "/",
            "path_rem": 0,
            "as_host": "internal:8080",
            "headers": {"X-A": "1", "X-Remove": ""},
            "debug": True,
            "no_grip": True,
            "id": "chat",
            "sub": ["a", "b"],
            "insecure": True,
            "proto": "ws",
            "ssl": False,
            "sig_iss": "iss",
            "sig_key": "base64:aGk=",
            "aco": True,
            "jsonp_mode": "basic",
            "jsonp_cb": "cb",
            "jsonp_body": "data",
            "jsonp_defcb": "app.handle",
            "jsonp_defmethod": "PUT",
            "log_level": "debug",
        },
        "p8.toml",
        "routes[0]",
    )
    assert r == Route(
        targets=(
            "http://localhost:9000",
            "https://b:443",
            "test",
            "zhttp+tcp://127.0.0.1:10010",
        ),
        host="example.com",
        path_prefix="/chat/",
        proto="ws",
        ssl=False,
        id="chat",
        over_http=True,
        one_event=True,
        prefix="chat-",
        replace_beg="/",
        as_host="internal:8080",
        headers=(("X-A", "1"), ("X-Remove", "")),
        debug=True,
        no_grip=True,
        sub=("a", "b"),
        insecure=True,
        sig_iss="iss",
        sig_key="base64:aGk=",
        aco=True,
        jsonp_mode="basic",
        jsonp_cb="cb",
        jsonp_body="data",
        jsonp_defcb="app.handle",
        jsonp_defmethod="PUT",
        log_level="debug",
        source="p8.toml: routes[0]",
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("localhost:8080", "http://localhost:8080"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("http://a:1", "http://a:1"),
        ("zhttpreq+tcp://127.0.0.1:10000", "zhttpreq+tcp://127.0.0.1:10000"),
        ("test", "test"),
    ],
)
def test_toml_target_forms(target: str, expected: str) -> None:
    assert route_from_toml({"target": target}, "p8.toml", "routes[0]").targets == (expected,)


def test_toml_unknown_key() -> None:
    err = toml_error({"target": "test", "path_beg": "/x"})
    assert str(err) == "p8.toml: routes[0].path_beg: unknown key"
    assert (err.source, err.key, err.problem) == ("p8.toml", "routes[0].path_beg", "unknown key")


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ({"target": 1}, "routes[0].target", "expected a string or a list of strings"),
        ({"target": ["a:1", 2]}, "routes[0].target[1]", "expected a string"),
        ({"target": "test", "host": 1}, "routes[0].host", "expected a string"),
        ({"target": "test", "prefix": None}, "routes[0].prefix", "expected a string"),
        ({"target": "test", "over_http": "yes"}, "routes[0].over_http", "expected a boolean"),
        ({"target": "test", "debug": 1}, "routes[0].debug", "expected a boolean"),
        ({"target": "test", "path_rem": True}, "routes[0].path_rem", "expected an integer"),
        ({"target": "test", "path_rem": "4"}, "routes[0].path_rem", "expected an integer"),
        ({"target": "test", "path_rem": 1.0}, "routes[0].path_rem", "expected an integer"),
        ({"target": "test", "ssl": 1}, "routes[0].ssl", "expected a boolean"),
        ({"target": "test", "sub": "a"}, "routes[0].sub", "expected a list of strings"),
        ({"target": "test", "sub": ["a", 1]}, "routes[0].sub[1]", "expected a string"),
        ({"target": "test", "headers": ["X:1"]}, "routes[0].headers", "expected a table"),
        ({"target": "test", "headers": {"X": 1}}, "routes[0].headers.X", "expected a string"),
        ({"target": "test", "aco": "yes"}, "routes[0].aco", "expected a boolean"),
        ({"target": "test", "jsonp_mode": "full"}, "routes[0].jsonp_mode",
         "must be 'basic' or 'extended'"),
        ({"target": "test", "jsonp_cb": ""}, "routes[0].jsonp_cb", "must not be empty"),
        ({"target": "test", "jsonp_defcb": "alert(1)"}, "routes[0].jsonp_defcb",
         "'alert(1)' is not a JavaScript function name"),
        ({"target": "test", "jsonp_defmethod": "G T"}, "routes[0].jsonp_defmethod",
         "'G T' is not an HTTP method"),
        ({"target": "test", "log_level": "loud"}, "routes[0].log_level", "must be one of"),
    ],
)
def test_toml_wrong_type(table: dict[str, object], key: str, problem: str) -> None:
    err = toml_error(table)
    assert err.key == key
    assert err.problem.startswith(problem)


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ({}, "routes[0].target", "required"),
        ({"host": "a"}, "routes[0].target", "required"),
        ({"target": ""}, "routes[0].target", "must not be empty"),
        ({"target": []}, "routes[0].target", "must name at least one target"),
        ({"target": ["a:1", ""]}, "routes[0].target[1]", "must not be empty"),
        ({"target": "a:0"}, "routes[0].target", "target invalid port"),
        ({"target": "a:http"}, "routes[0].target", "target invalid port"),
        ({"target": "a b"}, "routes[0].target", "'a b' is not a target"),
        ({"target": "zhttp/tcp://x:1"}, "routes[0].target", "'zhttp/tcp://x:1' is not a target"),
        ({"target": "http://"}, "routes[0].target", "'http://' is not a target"),
        ({"target": "test", "proto": "https"}, "routes[0].proto", 'expected "http" or "ws"'),
        ({"target": "test", "proto": 1}, "routes[0].proto", 'expected "http" or "ws"'),
        ({"target": "test", "path_rem": -1}, "routes[0].path_rem", "must not be negative"),
        ({"target": "test", "path_prefix": "api"}, "routes[0].path_prefix", "'api': must be"),
        ({"target": "test", "host": "a.com:80"}, "routes[0].host", "'a.com:80': must not"),
        ({"target": "test", "host": "*.a.com"}, "routes[0].host", "'*.a.com': partial"),
        ({"target": "test", "host": "a b"}, "routes[0].host", "'a b' is not a host name"),
        ({"target": "test", "host": ""}, "routes[0]", "a route with no host needs an id"),
        ({"target": "test", "id": ""}, "routes[0].id", "must not be empty"),
        ({"target": "test", "as_host": ""}, "routes[0].as_host", "must not be empty"),
        ({"target": "test", "sub": [""]}, "routes[0].sub[0]", "must not be empty"),
        ({"target": "test", "headers": {"a b": "1"}}, "routes[0].headers", "'a b' is not a"),
        (
            {"target": "test", "path_prefix": "/a", "path_rem": 2, "replace_beg": "/"},
            "routes[0]",
            "path_rem and replace_beg cannot be combined",
        ),
    ],
)
def test_toml_bad_value(table: dict[str, object], key: str, problem: str) -> None:
    err = toml_error(table)
    assert err.key == key
    assert err.problem.startswith(problem)


def test_toml_host_forms() -> None:
    def host(value: str) -> str:
        table = {"target": "test", "host": value, "id": "x"}
        return route_from_toml(table, "p8.toml", "routes[0]").host

    assert host("*") == "*"
    assert host("API.Example.com") == "api.example.com"
    assert host("[::1]") == "::1"
    assert host("::1") == "::1"
    assert host("") == ""


# ---- routes file: the spec's examples -----------------------------------------------------


def parse_one(line: str) -> Route:
    (only,) = parse_routes_file(line, "routes")
    return only


def test_spec_example_catch_all() -> None:
    assert parse_one("* localhost:8080") == Route(
        targets=("http://localhost:8080",), source="routes:1"
    )


def test_spec_example_per_host_tls_over_http() -> None:
    r = parse_one("example.com api.internal:443,ssl,over_http")
    assert (r.host, r.targets, r.over_http) == ("example.com", ("https://api.internal:443",), True)


def test_spec_example_path_prefix_channel_prefix_replace() -> None:
    r = parse_one("*,path_beg=/chat/,prefix=chat-,replace_beg=/ 127.0.0.1:9000,over_http")
    assert r == Route(
        targets=("http://127.0.0.1:9000",),
        path_prefix="/chat/",
        prefix="chat-",
        replace_beg="/",
        over_http=True,
        source="routes:1",
    )
    assert rewrite_path(r, "/chat/room") == "/room"


def test_spec_example_zmq_backends() -> None:
    assert parse_one("*,path_beg=/zmq zhttpreq/tcp://127.0.0.1:10000").targets == (
        "zhttpreq+tcp://127.0.0.1:10000",
    )
    r = parse_one("*,path_beg=/zs  zhttp/tcp://127.0.0.1:10010")
    assert (r.path_prefix, r.targets) == ("/zs", ("zhttp+tcp://127.0.0.1:10010",))


def test_spec_example_failover_with_id() -> None:
    r = parse_one("*,id=main 10.0.0.5:80 10.0.0.6:80")
    assert (r.id, r.targets) == ("main", ("http://10.0.0.5:80", "http://10.0.0.6:80"))


def test_spec_examples_as_one_file_have_a_duplicate_condition() -> None:
    # The first and last examples share the condition "*"; Pushpin skips the second one with a
    # warning, p8 refuses the file.
    err = line_error(SPEC_EXAMPLES)
    assert str(err) == "routes: line 15: duplicate condition, same as line 2"
    routes = parse_routes_file(SPEC_EXAMPLES.replace("*,id=main", "*,id=main,ssl=yes"), "r")
    assert [r.source for r in routes] == ["r:2", "r:5", "r:8", "r:11", "r:12", "r:15"]
    router = Router(routes)
    assert picked(router, "example.com", "/chat/x") == "https://api.internal:443"
    assert picked(router, "localhost:7999", "/chat/x") == "http://127.0.0.1:9000"
    assert picked(router, "localhost", "/zs/x") == "zhttp+tcp://127.0.0.1:10010"
    assert picked(router, "localhost", "/x", ssl=True) == "http://10.0.0.5:80"
    assert picked(router, "localhost", "/x") == "http://localhost:8080"


# ---- routes file: lexical syntax ----------------------------------------------------------


def test_blank_lines_and_comments() -> None:
    text = "\n   \n# a comment\n  # indented comment\n* test # trailing comment\n*,proto=ws test#x"
    routes = parse_routes_file(text, "routes")
    assert [(r.source, r.targets, r.proto) for r in routes] == [
        ("routes:5", ("test",), None),
        ("routes:6", ("test",), "ws"),
    ]
    assert parse_routes_file("", "routes") == []


def test_crlf_lines_and_tabs() -> None:
    routes = parse_routes_file("*\ttest\r\n*,proto=http  test\r\n", "routes")
    assert [r.proto for r in routes] == [None, "http"]


def test_quotes_include_spaces_commas_hash_and_equals() -> None:
    r = parse_one('*,prefix="a b,c#d=e" test')
    assert r.prefix == "a b,c#d=e"
    r = parse_one('*,header="X-Thing: a, b" test')
    assert r.headers == (("X-Thing", "a, b"),)
    assert parse_one('*,pre"fix=x y"z test').prefix == "x yz"


def test_quote_escapes() -> None:
    assert parse_one(r'*,prefix="a\\b\"c" test').prefix == 'a\\b"c'


def test_empty_value_condition_is_reachable_only_by_id() -> None:
    r = parse_one("id=myapi,path_beg=/api 127.0.0.1:8080")
    assert (r.host, r.id, r.path_prefix) == ("", "myapi", "/api")
    router = Router([r])
    assert router.match("anything", "/api") is None
    assert router.by_id("myapi") is r


def test_condition_props() -> None:
    r = parse_one(
        "Example.COM,proto=ws,ssl=no,path_beg=/x/,id=i,prefix=p-,sig_iss=iss,"
        'sig_key=base64:aGk=,as_host=in:81,header=X-A:1,header=X-B:,"header=X-C:  v",'
        "debug,no_grip,aco,jsonp_mode=basic,jsonp_cb=c,jsonp_body=b,jsonp_defcb=f,"
        "jsonp_defmethod=PATCH,log_level=0,session test"
    )
    assert r == Route(
        targets=("test",),
        host="example.com",
        proto="ws",
        ssl=False,
        path_prefix="/x/",
        id="i",
        prefix="p-",
        sig_iss="iss",
        sig_key="base64:aGk=",
        as_host="in:81",
        headers=(("X-A", "1"), ("X-B", ""), ("X-C", "v")),
        debug=True,
        no_grip=True,
        aco=True,
        jsonp_mode="basic",
        jsonp_cb="c",
        jsonp_body="b",
        jsonp_defcb="f",
        jsonp_defmethod="PATCH",
        log_level="error",
        source="routes:1",
    )
    assert [parse_one(f"*,log_level={n} test").log_level for n in (1, 2, 3, 9)] == [
        "warning", "info", "debug", "debug"]
    assert parse_one("*,ssl=yes,path_rem=3 test").ssl is True
    assert parse_one("*,path_rem=3 test").path_rem == 3


# ---- routes file: targets -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("localhost:80", "http://localhost:80"),
        ("localhost:443,ssl", "https://localhost:443"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("test", "test"),
        ("zhttp/tcp://127.0.0.1:10010", "zhttp+tcp://127.0.0.1:10010"),
        ("zhttpreq/ipc:///tmp/x", "zhttpreq+ipc:///tmp/x"),
    ],
)
def test_target_mapping(target: str, expected: str) -> None:
    assert parse_one(f"* {target}").targets == (expected,)


def test_target_props_land_on_the_route() -> None:
    r = parse_one("*,as_host=ignored a:1,insecure,over_http,one_event,sub=x,sub=y,host=h:2")
    assert (r.insecure, r.over_http, r.one_event) == (True, True, True)
    assert (r.sub, r.as_host) == (("x", "y"), "h:2")
    assert parse_one("*,as_host=kept a:1").as_host == "kept"


def test_first_targets_props_win() -> None:
    r = parse_one("* a:1 b:2,over_http,insecure,sub=s,host=h")
    assert (r.over_http, r.insecure, r.sub, r.as_host) == (False, False, (), None)
    r = parse_one("* a:1,over_http,sub=s b:2")
    assert (r.over_http, r.sub) == (True, ("s",))


# ---- routes file: line errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('*,prefix="abc test', "unterminated quote"),
        ('*,prefix="abc\\', "unterminated quote"),
        ('*,prefix="a\\nb" test', "bad escape \\n"),
        ("*", "must specify condition and at least one target"),
        ("*,path_beg=/x # test", "must specify condition and at least one target"),
        ("* localhost", "target bad format"),
        ("* :80", "target bad format"),
        ("* [::1]8080", "target bad format"),
        ("* a:0", "target invalid port"),
        ("* a:65536", "target invalid port"),
        ("* a:8o", "target invalid port"),
        ("* a:", "target invalid port"),
        ("* http://a:80", "target invalid port"),
        ("*,proto=https test", "proto: must be set to 'http' or 'ws'"),
        ("*,proto test", "proto: must be set to 'http' or 'ws'"),
        ("*,ssl=true test", "ssl: must be set to 'yes' or 'no'"),
        ("*,path_beg= test", "path_beg: cannot be empty"),
        ("*,path_beg=api test", "path_beg: 'api': must be empty or start with \"/\""),
        ("*,path_rem=-1 test", "path_rem: '-1' is not a non-negative integer"),
        ("*,path_rem=x test", "path_rem: 'x' is not a non-negative integer"),
        ("*,prefix test", "prefix: needs a value (prefix=...)"),
        ("*,debug=false test", "debug: takes no value (it is a flag)"),
        ("*,header=NoColon test", "header: must use format 'name:value'"),
        ("*,header=:v test", "header: must use format 'name:value'"),
        ("*,header=Bad Name:v test", "header: must use format"),
        ('*,"header=Bad Name:v" test', "header: 'Bad Name' is not a header name"),
        ("*,id= test", "id: must not be empty"),
        ("*,prefix=a,prefix=b test", "'prefix' given more than once"),
        ("*,wat test", "wat: unknown condition option"),
        ("*, test", "expecting an option after ','"),
        ("*,=x test", "empty option name in '=x'"),
        ("a.com:80 test", "condition: 'a.com:80': must not include a port"),
        ("*.a.com test", "condition: '*.a.com': partial wildcards"),
        ("prefix=x test", "a route with no host needs an id"),
        ("*,path_beg=/a,path_rem=1,replace_beg=/ test", "path_rem and replace_beg cannot"),
        ("* a:1,wat", "wat: unknown target option"),
        ("* a:1,ssl=yes", "ssl: takes no value"),
        ("* a:1,sub=", "sub: must not be empty"),
        ("* a:1,host", "host: needs a value"),
        ("* test,ssl", "'test': 'ssl' applies only to host:port targets"),
        ("* zhttp/", "'zhttp/' needs a ZeroMQ spec"),
        ("*,aco=yes test", "aco: takes no value"),
        ("*,jsonp_mode=full test", "jsonp_mode: must be 'basic' or 'extended'"),
        ("*,jsonp_defcb=x;y test", "jsonp_defcb: 'x;y' is not a JavaScript function name"),
        ("*,log_level=verbose test", "log_level: 'verbose' is not a log level (0 to 3)"),
        ("*,session=1 test", "session: takes no value"),
    ],
)
def test_line_errors(line: str, problem: str) -> None:
    err = line_error(f"* test\n\n{line}\n")
    assert (err.source, err.key) == ("routes", "line 3")
    assert err.problem.startswith(problem), err.problem


@pytest.mark.parametrize(
    "option",
    ["orig_headers", "sockjs=/s", "sockjs_as_path=/ws"],
)
def test_unsupported_condition_options(option: str) -> None:
    name = option.partition("=")[0]
    err = line_error(f"*,{option} test")
    assert str(err) == f"routes: line 1: '{name}' is not supported by p8"


@pytest.mark.parametrize(
    "option", ["untrusted", "trust_connect_host", "ipc_file_mode=777", "client_cert=c"]
)
def test_unsupported_target_options(option: str) -> None:
    name = option.partition("=")[0]
    assert line_error(f"* a:1,{option}").problem == f"'{name}' is not supported by p8"


def test_duplicate_condition_names_both_lines() -> None:
    err = line_error("*,path_beg=/a a:1\nexample.com a:1\n\n*,path_beg=/a,id=other b:2\n")
    assert str(err) == "routes: line 4: duplicate condition, same as line 1"
    err = line_error("EXAMPLE.com,proto=ws a:1\nexample.com,proto=ws b:2")
    assert err.key == "line 2"


def test_conditions_differing_in_one_field_are_not_duplicates() -> None:
    text = "* a:1\n*,proto=ws a:1\n*,ssl=no a:1\n*,path_beg=/a a:1\nx.com a:1\nid=z a:1\nid=y a:1"
    assert len(parse_routes_file(text, "routes")) == 7


def test_duplicate_condition_helper() -> None:
    routes = [route("a"), route("b", host="x"), route("c", host="X"), route("d", host="", id="i")]
    assert duplicate_condition(routes) == (1, 2)
    assert duplicate_condition(routes[:2] + routes[3:] * 2) is None


# ---- routes file: never anything but ConfigError ------------------------------------------

_SYNTAX = ("*", "example.com", "[::1]", " ", "  ", "\t", ",", "=", '"', "\\", "#", ":", "/", "\n")
_TARGETS = (
    "test",
    "a:80",
    "[::1]:80",
    "zhttp/",
    "zhttpreq/tcp://x:1",
    "65536",
    "\r\n",
    "é",
    "\x00",
)
_OPTIONS = (
    "ssl",
    "ssl=yes",
    "proto=ws",
    "path_beg=/a",
    "path_rem=2",
    "replace_beg=/",
    "header=X:1",
)
_FLAGS = ("sub=c", "id=i", "host=h", "over_http", "aco", "debug", "prefix")
_FRAGMENTS = st.sampled_from((*_SYNTAX, *_TARGETS, *_OPTIONS, *_FLAGS))


@given(st.one_of(st.text(), st.lists(_FRAGMENTS).map("".join)))
def test_parse_routes_file_returns_routes_or_raises_config_error(text: str) -> None:
    try:
        routes = parse_routes_file(text, "routes")
    except ConfigError as exc:
        assert exc.source == "routes"
        assert exc.key.startswith("line ")
    else:
        assert all(isinstance(r, Route) and r.targets for r in routes)
        Router(routes)
