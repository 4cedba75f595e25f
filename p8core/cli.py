"""The ``p8`` command: ``run``, ``check``, ``plugins``, ``publish``. Logging is set up here."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import anyio
import structlog

from .app import App
from .errors import P8Error
from .grip.sig import Signer
from .plugins import describe_plugins, make_plugin_manager

if TYPE_CHECKING:
    from .server.listeners import ClientSockets
    from .server.serve import Task

log = structlog.get_logger(component="cli")

EXIT_USAGE = 2


def configure_logging(level: str) -> None:
    """structlog once per process: console lines in a terminal, JSON lines otherwise."""
    renderer: Any = (structlog.dev.ConsoleRenderer() if sys.stderr.isatty()
                     else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        # One write per line: the workers of a supervisor share its stderr, and with
        # PYTHONUNBUFFERED print() would write a line and its newline apart.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p8", description="A GRIP proxy.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "serve clients, the control API and plugin services"),
                       ("check", "validate the config; print routes and plugins"),
                       ("plugins", "list installed plugins and what they register"),
                       ("config-reference", "print every config key as Markdown")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", type=Path, help="TOML file (default: built-in defaults)")
        if name == "run":
            p.add_argument("--log-level", default="info",
                           choices=["debug", "info", "warning", "error"])
    imp = sub.add_parser("import-pushpin", help="write a p8 config from Pushpin's")
    imp.add_argument("pushpin_conf", type=Path, help="Pushpin's pushpin.conf")
    imp.add_argument("routes", type=Path, nargs="?",
                     help="Pushpin's routes file (default: pushpin.conf's routesfile)")
    imp.add_argument("-o", "--output", type=Path, help="TOML file to write (default: stdout)")
    pub = sub.add_parser("publish", help="publish one item through the control API")
    pub.add_argument("channel")
    pub.add_argument("content", nargs="?", help="the content; @file reads a file")
    pub.add_argument("--url", "--spec", dest="url",
                     default=os.environ.get("GRIP_URL", "http://localhost:5561"),
                     help="control API base URL, or a GRIP URL with ?iss=&key= to sign "
                     "with; several, comma-separated, publish to each instance "
                     "(default: $GRIP_URL, else http://localhost:5561)")
    pub.add_argument("-u", "--user", help="USER:PASSWORD for Basic authentication")
    pub.add_argument("--id")
    pub.add_argument("--prev-id")
    pub.add_argument("--sender", help="sets meta 'sender'")
    pub.add_argument("-M", "--meta", action="append", default=[], help="meta K=V")
    pub.add_argument("--code", type=int, default=200, help="http-response status code")
    pub.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    action = pub.add_mutually_exclusive_group()
    action.add_argument("--hint", action="store_true", help="send action hint")
    action.add_argument("--close", action="store_true", help="send action close")
    pub.add_argument("--no-eol", action="store_true", help="no newline after HTTP payloads")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            configure_logging(args.log_level)
            return _run(App.from_file(args.config), args.log_level)
        if args.command == "check":
            return _check(App.from_file(args.config))
        if args.command == "plugins":
            return _plugins(App.from_file(args.config))
        if args.command == "config-reference":
            from .reference import config_reference

            print(config_reference(App.from_file(args.config).pm), end="")
            return 0
        if args.command == "import-pushpin":
            return _import_pushpin(args)
        return _publish(args)
    except P8Error as e:
        print(f"p8: error: {e}", file=sys.stderr)
        return EXIT_USAGE


def _run(app: App, log_level: str = "info") -> int:
    """Serve until SIGTERM or SIGINT: in this process, or as the supervisor of
    ``[server] workers`` processes."""
    if app.config.server.worker_count > 1:
        from .server.supervisor import Supervisor

        return serve_until_signalled(app, services=[Supervisor(app, log_level).run])
    return serve_until_signalled(app)


def serve_until_signalled(app: App, *, client_sockets: ClientSockets | None = None,
                          services: Sequence[Task] = ()) -> int:
    """Run ``serve`` until SIGTERM or SIGINT (SIGHUP reloads, inside ``serve``).

    :raises P8Error: what stopped the server, with its message.
    """
    from .server.serve import serve

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(partial(serve, app, client_sockets=client_sockets,
                                   services=services))
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("shutting_down", signal=signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    break

    try:
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": _has_uvloop()})
    except BaseExceptionGroup as group:
        raise _first_p8_error(group) from None
    return 0


def _first_p8_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The P8Error inside a task group's exceptions, or the group itself (a bug)."""
    for exc in group.exceptions:
        if isinstance(exc, P8Error):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_p8_error(exc)
            if isinstance(inner, P8Error):
                return inner
    return group


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _check(app: App) -> int:
    print(f"config: {app.config.source}: ok")
    print("routes:")
    for route in app.config.routes:
        flags = [n for n in ("over_http", "no_grip", "debug", "aco") if getattr(route, n)]
        print(f"  {route.route_id} -> {' '.join(route.targets)}"
              + (f"  [{', '.join(flags)}]" if flags else ""))
    return _plugins(app)


def _plugins(app: App) -> int:
    print("plugins:")
    for info in describe_plugins(app.pm, app.config):
        state = "enabled" if info.enabled else "disabled"
        print(f"  {info.name} ({info.distribution} {info.version}, {state})")
        for names in info.registers.values():
            for name in names:
                print(f"    {name}")
    return 0


def _import_pushpin(args: argparse.Namespace) -> int:
    from .pushpin_import import import_files

    pm = make_plugin_manager(None, str(args.pushpin_conf))
    owned = {s.name for offered in pm.hook.p8_config_sections() for s in offered}
    text, notes = import_files(args.pushpin_conf, args.routes, owned)
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text)
    for note in notes:
        print(f"p8: not carried over: {note}", file=sys.stderr)
    return 0


def _publish(args: argparse.Namespace) -> int:
    if args.content is None and not (args.hint or args.close):
        print("Error: must specify content", file=sys.stderr)
        return 1
    content = args.content or ""
    if content.startswith("@"):
        content = http_content = Path(content[1:]).read_text()
    else:
        http_content = content if args.no_eol else content + "\n"
    item: dict[str, Any] = {"channel": args.channel}
    if args.id:
        item["id"] = args.id
    if args.prev_id:
        item["prev-id"] = args.prev_id
    meta = dict(kv.split("=", 1) for kv in args.meta)
    if args.sender:
        meta["sender"] = args.sender
    if meta:
        item["meta"] = meta
    if args.hint:
        item["formats"] = {f: {"action": "hint"}
                           for f in ("http-response", "http-stream", "ws-message")}
    elif args.close:
        item["formats"] = {"http-stream": {"action": "close"}, "ws-message": {"action": "close"}}
    else:
        response: dict[str, Any] = {"code": args.code, "body": http_content}
        if args.header:
            response["headers"] = [[p.strip() for p in h.split(":", 1)] for h in args.header]
        item["formats"] = {"http-response": response, "http-stream": {"content": http_content},
                           "ws-message": {"content": content}}
    if args.user is not None and ":" not in args.user:
        print("Error: --user must be USER:PASSWORD", file=sys.stderr)
        return 1
    auth = tuple(args.user.split(":", 1)) if args.user else None
    return _publish_to_each(args.url, {"items": [item]}, auth)


def _publish_to_each(urls: str, body: dict[str, Any], auth: Any) -> int:
    """POST ``body`` to every comma-separated control API (or GRIP URL) in ``urls``, as
    gripcontrol publishes to several proxies: each is tried, each failure reported."""
    import httpx

    targets = [url.strip() for url in urls.split(",") if url.strip()]
    if not targets:
        print("Error: --url names no control API", file=sys.stderr)
        return 1
    failures = 0
    for target in targets:
        try:
            url, headers = _grip_url(target)
            resp = httpx.post(url + "/publish/", json=body, headers=headers, auth=auth)
            error = None if resp.status_code == 200 else resp.text.strip()
        except ValueError as e:
            error = f"key: {e}"
        except httpx.HTTPError as e:
            error = str(e) or type(e).__name__
        if error is not None:
            failures += 1
            where = f"{target.split('?', 1)[0]}: " if len(targets) > 1 else ""
            print(f"Error: {where}{error}", file=sys.stderr)
    if failures:
        return 1
    print("Published")
    return 0


def _grip_url(url: str) -> tuple[str, dict[str, str]]:
    """The control URL without query, and the credentials its ``iss``/``key`` ask for:
    a JWT signed with the key, or the key itself without ``iss``, as gripcontrol does."""
    parts = urlsplit(url)
    params = parse_qs(parts.query)
    base = urlunsplit(parts._replace(query="")).rstrip("/")
    key, iss = params.get("key", [""])[0], params.get("iss", [""])[0]
    if not key:
        return base, {}
    token = Signer(iss, key).token(time.time()) if iss else key
    return base, {"authorization": f"Bearer {token}"}


if __name__ == "__main__":
    sys.exit(main())
