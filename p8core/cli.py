"""The ``p8`` command: ``run``, ``check``, ``plugins``, ``publish``. Logging is set up here."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from .app import App
from .errors import P8Error
from .plugins import describe_plugins

if TYPE_CHECKING:
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
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p8", description="A GRIP proxy.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "serve clients, the control API and plugin services"),
                       ("check", "validate the config; print routes and plugins"),
                       ("plugins", "list installed plugins and what they register")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", type=Path, help="TOML file (default: built-in defaults)")
        if name == "run":
            p.add_argument("--log-level", default="info",
                           choices=["debug", "info", "warning", "error"])
    pub = sub.add_parser("publish", help="publish one item through the control API")
    pub.add_argument("channel")
    pub.add_argument("content", nargs="?", help="the content; @file reads a file")
    pub.add_argument("--spec", "--url", dest="spec",
                     default=os.environ.get("GRIP_URL", "http://localhost:5561"),
                     help="control API base URL; several, comma-separated, publish to each "
                          "(default: $GRIP_URL, else http://localhost:5561)")
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
        return _publish(args)
    except P8Error as e:
        print(f"p8: error: {e}", file=sys.stderr)
        return EXIT_USAGE


def _run(app: App, log_level: str = "info") -> int:
    """Serve until SIGTERM or SIGINT: in this process, or as the supervisor of
    ``[server] workers`` processes."""
    if app.config.server.worker_count > 1:
        from .server.supervisor import Supervisor

        supervisor = Supervisor(app, log_level)
        return serve_until_signalled(app, services=[supervisor.run],
                                     on_hangup=supervisor.hangup)
    return serve_until_signalled(app)


def serve_until_signalled(app: App, *, client_sockets: Sequence[socket.socket] = (),
                          services: Sequence[Task] = (),
                          on_hangup: Callable[[], None] | None = None) -> int:
    """Run ``serve`` until SIGTERM or SIGINT. SIGHUP asks for a reload, which this process
    logs and passes to ``on_hangup`` (a supervisor: to each of its workers).

    :raises P8Error: what stopped the server, with its message.
    """
    from .server.serve import serve

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(partial(serve, app, client_sockets=client_sockets,
                                   services=services))
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT,
                                            signal.SIGHUP) as signals:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        log.info("reload_requested")
                        if on_hangup is not None:
                            on_hangup()
                        continue
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
        flags = [n for n in ("over_http", "no_grip", "debug") if getattr(route, n)]
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
    return _publish_to_each(args.spec, {"items": [item]})


def _publish_to_each(specs: str, body: dict[str, Any]) -> int:
    """POST ``body`` to every comma-separated control API in ``specs``, as gripcontrol
    publishes to several proxies: each instance is tried, each failure reported."""
    import httpx

    urls = [url.strip() for url in specs.split(",") if url.strip()]
    if not urls:
        print("Error: --spec names no control API", file=sys.stderr)
        return 1
    failures = 0
    for url in urls:
        try:
            resp = httpx.post(url.rstrip("/") + "/publish/", json=body)
            error = None if resp.status_code == 200 else resp.text.strip()
        except httpx.HTTPError as e:
            error = str(e) or type(e).__name__
        if error is not None:
            failures += 1
            where = f"{url}: " if len(urls) > 1 else ""
            print(f"Error: {where}{error}", file=sys.stderr)
    if failures:
        return 1
    print("Published")
    return 0


if __name__ == "__main__":
    sys.exit(main())
