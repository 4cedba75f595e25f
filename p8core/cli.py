"""The ``p8`` command: ``run``, ``check``, ``plugins``, ``publish``, ``stats``,
``config-reference``, ``import-pushpin``. Logging is set
up here."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from . import cli_publish, cli_stats
from .app import App
from .errors import P8Error
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
    cli_publish.add_parser(sub)
    cli_stats.add_parser(sub)
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
        if args.command == "stats":
            return cli_stats.run(args)
        return cli_publish.run(args)
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


if __name__ == "__main__":
    sys.exit(main())
