"""The configuration reference, written from the config dataclasses themselves.

Every key is a dataclass field: the core's tables in :mod:`p8core.config`, ``[[routes]]``
in :class:`~p8core.proxy.routes.Route`, and each plugin's table in the dataclass its
``ConfigSection`` parser returns (read from the parser's return annotation). A key's
meaning is the docstring under its field, so the reference cannot drift from the code:
``p8 config-reference`` prints it, and a test compares it with ``docs/config-reference.md``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import textwrap
import types
import typing
from collections.abc import Iterable, Iterator
from typing import Any

import pluggy

from .config import (
    ConfigSection,
    ControlConfig,
    PluginsConfig,
    ProxyConfig,
    PubsubConfig,
    ServerConfig,
)
from .errors import PluginError
from .proxy.routes import TOML_FIELDS, Route

CORE_TABLES: tuple[tuple[str, type[Any]], ...] = (
    ("server", ServerConfig),
    ("control", ControlConfig),
    ("proxy", ProxyConfig),
    ("pubsub", PubsubConfig),
    ("plugins", PluginsConfig),
)
_NOT_KEYS = {(PluginsConfig, "sections"), (Route, "source")}
# The TOML parser takes one target as a string, several as a list.
_TYPE_NAMES = {(Route, "targets"): "string or list of strings"}

INTRO = """\
# Configuration reference

<!-- Written by `p8 config-reference` from the config dataclasses; `make docs` rewrites it.
     Do not edit by hand: a test fails when this file and the code disagree. -->

p8 reads one TOML file: `p8 run --config p8.toml` (`p8 check --config p8.toml` only checks
it). Every key is optional; the defaults below apply when a key or a whole table is
absent, so p8 runs without any file. An unknown table or key, a value of the wrong type, a
negative number or a bad address stops start-up with the file, the key and the reason.
Relative paths are relative to the config file's directory.
"""

ROUTES_INTRO = """\
Each `[[routes]]` table is one route. A request goes to the most specific route whose
condition (`host`, `proto`, `ssl`, `path_prefix`) it meets, by Pushpin's rules; without any
route (and without `[proxy] routes_file`) everything goes to the built-in `test` target.
"""


def field_docs(cls: type[Any]) -> dict[str, str]:
    """The docstring written under each field of dataclass ``cls``, by field name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = typing.cast(ast.ClassDef, tree.body[0]).body
    docs = {}
    for node, after in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _markdown(text: str) -> str:
    """A docstring as one Markdown line: reST literals become code spans."""
    return " ".join(text.replace("``", "`").split())


def _is_table(tp: Any) -> bool:
    args = typing.get_args(tp)
    return (typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis
            and typing.get_origin(args[0]) is tuple)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if _is_table(tp):
        return "table of strings"
    if typing.get_origin(tp) is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}s"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _toml(value: Any, name: str, tp: Any) -> str:
    """A default as it would be written in TOML."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int) and name.endswith("_mode"):
        return f"0o{value:o}"
    if isinstance(value, tuple):
        if _is_table(tp):
            return "{" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value) + "}"
        return "[" + ", ".join(_toml(v, "", None) for v in value) + "]"
    return repr(value)


def _rows(cls: type[Any], where: str, keys: dict[str, str] | None,
          strict: bool) -> Iterator[str]:
    """The table rows of ``cls``'s fields; ``keys`` maps TOML keys to fields when they
    differ.

    :raises PluginError: with ``strict``, a field without a docstring.
    """
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if (cls, f.name) not in _NOT_KEYS}
    for key, name in (keys or {n: n for n in fields}).items():
        field = fields[name]
        if name not in docs and strict:
            raise PluginError(f"{where}.{key} has no docstring: write one under the field "
                              f"{cls.__qualname__}.{name}")
        meaning = _markdown(docs[name]) if name in docs else "(not documented by its plugin)"
        missing = field.default is dataclasses.MISSING
        default = "required" if missing else f"`{_toml(field.default, name, hints[name])}`"
        kind = _TYPE_NAMES.get((cls, name)) or _type_name(hints[name])
        yield f"| `{key}` | {kind} | {default} | {meaning} |"


def _table(heading: str, cls: type[Any], where: str, strict: bool, intro: str = "",
           keys: dict[str, str] | None = None) -> list[str]:
    lines = [f"## `{heading}`", ""]
    if intro:
        lines += [intro.rstrip("\n"), ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    return [*lines, *_rows(cls, where, keys, strict), ""]


def settings_class(section: ConfigSection) -> type[Any] | None:
    """The dataclass a plugin's table parses into: its parser's return annotation."""
    returned = typing.get_type_hints(section.parse).get("return")
    return returned if isinstance(returned, type) and dataclasses.is_dataclass(returned) else None


def config_reference(pm: pluggy.PluginManager, *, strict: bool = False) -> str:
    """The Markdown reference of every key: the core's, and the tables of the plugins
    registered with ``pm``, in name order.

    :param strict: a key without a docstring is an error (else it is marked as such).
    :raises PluginError: with ``strict``, a key without a docstring.
    """
    lines = [INTRO]
    for name, cls in CORE_TABLES:
        lines += _table(f"[{name}]", cls, name, strict)
    order = {key: TOML_FIELDS[key] for key in sorted(TOML_FIELDS, key=_route_order)}
    lines += _table("[[routes]]", Route, "routes", strict, ROUTES_INTRO, order)
    owned: list[tuple[ConfigSection, str]] = sorted(
        ((section, impl.plugin_name) for impl in pm.hook.p8_config_sections.get_hookimpls()
         for section in typing.cast(Iterable[ConfigSection], impl.function())),
        key=lambda pair: pair[0].name)
    for section, plugin in owned:
        settings = settings_class(section)
        where = f"plugins.{section.name}"
        intro = f"The settings of the plugin `{plugin}`."
        if settings is None:
            lines += [f"## `[{where}]`", "", intro + " Its parser does not return a "
                      "dataclass, so the plugin documents its keys itself.", ""]
        else:
            doc = _markdown(inspect.cleandoc(settings.__doc__ or ""))
            lines += _table(f"[{where}]", settings, where, strict, f"{intro} {doc}")
    return "\n".join(lines).rstrip("\n") + "\n"


def _route_order(key: str) -> int:
    """``[[routes]]`` keys in the order of the Route's fields."""
    names = [f.name for f in dataclasses.fields(Route)]
    return names.index(TOML_FIELDS[key])
