"""Subscription filters (grip.md §8), sans-I/O, for every hold mode and transport.

A channel's filter names are run on each item for it. *Delivery* filters (``skip-self``,
``skip-users``, ``require-sub``) may drop the item; *content* filters (``var-subst``,
``build-id``) rewrite its content. ``build-id`` also rewrites the body of the initial
response and of each next-link response. Unknown names are ignored, as Pushpin 1.36 does.

An item that lists the content filters it was prepared for (``content-filters``) must list
exactly the subscription's, in order (:func:`agrees`); what a disagreement does is up to
the caller.

The ``%`` directive syntax shared by ``var-subst`` and ``build-id`` is Pushpin's: ``%%``
is ``%``, ``%X`` and ``%(arg)X`` name directive ``X`` (a letter, or any character after a
field), ``\\`` escapes a character inside ``(...)``. Errors carry Pushpin's messages with
the byte position, e.g. ``No such variable 'x' at position 9``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Final

__all__ = [
    "CONTENT_FILTERS",
    "DELIVERY_FILTERS",
    "RESPONSE_FILTERS",
    "FilterError",
    "agrees",
    "build_id",
    "content_filters",
    "delivers",
    "filter_content",
    "filter_message",
    "filter_response",
    "render",
    "var_subst",
]

#: Filters that may drop an item.
DELIVERY_FILTERS: Final = frozenset({"skip-self", "skip-users", "require-sub"})
#: Filters that change a published item's content; ``content-filters`` lists these.
CONTENT_FILTERS: Final = frozenset({"var-subst", "build-id"})
#: Filters that also change the initial and next-link response bodies.
RESPONSE_FILTERS: Final = frozenset({"build-id"})

_PERCENT: Final = 0x25
_OPEN: Final = 0x28
_CLOSE: Final = 0x29
_BACKSLASH: Final = 0x5C

_NO_IDS: Final[Mapping[str, str | None]] = MappingProxyType({})


class FilterError(ValueError):
    """A content filter could not run; the message says why (Pushpin's words)."""


Handler = Callable[[str, bytes | None], bytes]
"""Expands one directive: its character and its ``(...)`` argument, if any.

Raises :class:`FilterError` with a message that :func:`render` completes with the position.
"""


def render(template: bytes, handle: Handler) -> bytes:
    """Expand every ``%`` directive of ``template`` through ``handle``.

    :raises FilterError: a malformed directive, or one that ``handle`` refused.
    """
    if b"%" not in template:
        return template
    out = bytearray()
    n, size = 0, len(template)
    while n < size:
        c = template[n]
        if c != _PERCENT:
            out.append(c)
            n += 1
            continue
        if n + 1 >= size:
            raise FilterError(f"Expected directive after '%' at position {n}")
        n += 1
        c = template[n]
        if c == _PERCENT:
            out.append(_PERCENT)
        elif c == _OPEN:
            field_start = n
            if n + 1 >= size:
                raise FilterError(f"Expected character after '(' at position {n}")
            n += 1
            arg = bytearray()
            closed = False
            while n < size:
                c = template[n]
                if c == _BACKSLASH:
                    if n + 1 >= size:
                        raise FilterError(f"Expected character after '\\' at position {n}")
                    n += 1
                    arg.append(template[n])
                elif c == _CLOSE:
                    closed = True
                    break
                else:
                    arg.append(c)
                n += 1
            if not closed:
                raise FilterError(f"Unterminated field starting at position {field_start}")
            if n + 1 >= size:
                raise FilterError(f"Expected directive after ')' at position {n}")
            n += 1
            out += _expand(handle, chr(template[n]), bytes(arg), n)
        elif chr(c).isascii() and chr(c).isalpha():
            out += _expand(handle, chr(c), None, n)
        else:
            raise FilterError(f"Unknown directive '{chr(c)}' at position {n}")
        n += 1
    return bytes(out)


def _expand(handle: Handler, directive: str, arg: bytes | None, at: int) -> bytes:
    try:
        return handle(directive, arg)
    except FilterError as e:
        raise FilterError(f"{e} at position {at}") from None


def _variables(values: Mapping[str, bytes]) -> Handler:
    """The handler of ``%(name)s``: the value of variable ``name``."""

    def handle(directive: str, arg: bytes | None) -> bytes:
        if directive != "s":
            raise FilterError(f"Unknown directive '{directive}'")
        if arg is None:
            raise FilterError("Directive 's' requires argument")
        value = values.get(arg.decode("utf-8", "replace"))
        if value is None:
            raise FilterError(f"No such variable '{arg.decode('utf-8', 'replace')}'")
        return value

    return handle


def var_subst(content: bytes, meta: Mapping[str, str]) -> bytes:
    """``var-subst``: ``%(name)s`` becomes subscription meta ``name``, ``%%`` becomes ``%``.

    :raises FilterError: an unknown variable or any other directive.
    """
    if b"%" not in content:
        return content
    return render(content, _variables({k: v.encode("utf-8") for k, v in meta.items()}))


def build_id(content: bytes, meta: Mapping[str, str],
             prev_ids: Mapping[str, str | None]) -> bytes:
    """``build-id``: ``%I`` becomes the id that subscription meta ``id_format`` renders
    from the channels' prev-ids (``%(<channel>)s``); ``%(<text>)I`` is ``<text>``; meta
    ``id_encoding=hex`` hex-encodes what is inserted.

    :raises FilterError: no ``id_format``, a template or content that does not render,
        or an ``id_encoding`` other than ``hex``.
    """
    id_format = meta.get("id_format")
    if id_format is None:
        raise FilterError("no sub meta 'id_format'")
    known = {name: value.encode("utf-8") for name, value in prev_ids.items() if value is not None}
    default: bytes | None = None
    if known:
        try:
            default = render(id_format.encode("utf-8"), _variables(known))
        except FilterError as e:
            raise FilterError(f"failed to render ID: {e}") from None
    encoding = meta.get("id_encoding")
    if encoding is not None and encoding != "hex":
        raise FilterError(f"unsupported encoding: {encoding}")
    hex_ids = encoding == "hex"

    def handle(directive: str, arg: bytes | None) -> bytes:
        if directive != "I":
            raise FilterError(f"Unknown directive '{directive}'")
        value = arg if arg is not None else default
        if value is None:
            raise FilterError("No ID specified and no default ID in context")
        return value.hex().encode("ascii") if hex_ids else value

    return render(content, handle)


def content_filters(names: Sequence[str]) -> tuple[str, ...]:
    """The content filters among ``names``, in order: what an item's ``content-filters``
    must equal."""
    return tuple(name for name in names if name in CONTENT_FILTERS)


def agrees(listed: Sequence[str] | None, names: Sequence[str]) -> bool:
    """The content-filter agreement rule: an item's ``content-filters`` (``listed``, ``None``
    when the item lists none) must equal the content filters among the subscription's
    ``names`` (its filters, or only their :func:`content_filters`), in order. An item that
    lists none agrees with any subscription."""
    return listed is None or tuple(listed) == content_filters(names)


def _delivers(name: str, meta: Mapping[str, str], publish_meta: Mapping[str, str],
              subscribed: Collection[str]) -> bool:
    user = meta.get("user", "")
    if name == "skip-self":
        return not (user and user == publish_meta.get("sender", ""))
    if name == "skip-users":
        skip = {part.strip() for part in publish_meta.get("skip_users", "").split(",")}
        return not (user and user in skip)
    required = publish_meta.get("require_sub", "")
    return not required or required in subscribed


def delivers(names: Sequence[str], meta: Mapping[str, str], publish_meta: Mapping[str, str],
             subscribed: Collection[str]) -> bool:
    """Whether an item passes every delivery filter among ``names``.

    :param meta: the subscription's meta (``Grip-Set-Meta``, WebSocket ``set-meta``).
    :param publish_meta: the item's ``meta``.
    :param subscribed: every channel the connection is subscribed to.
    """
    return all(_delivers(name, meta, publish_meta, subscribed)
               for name in names if name in DELIVERY_FILTERS)


def _content(name: str, content: bytes, meta: Mapping[str, str],
             prev_ids: Mapping[str, str | None]) -> bytes:
    if name == "var-subst":
        return var_subst(content, meta)
    if name == "build-id":
        return build_id(content, meta, prev_ids)
    return content


def filter_content(names: Sequence[str], content: bytes, meta: Mapping[str, str],
                   prev_ids: Mapping[str, str | None] = _NO_IDS) -> bytes:
    """Run the content filters among ``names``, in order, on a published item's content.

    :param meta: the subscription's meta.
    :param prev_ids: the connection's channels and their prev-ids, for ``build-id``
        (none for a connection without prev-ids).
    :raises FilterError: a filter failed; nothing should be sent.
    """
    for name in names:
        content = _content(name, content, meta, prev_ids)
    return content


def filter_message(names: Sequence[str], content: bytes, meta: Mapping[str, str],
                   publish_meta: Mapping[str, str],
                   prev_ids: Mapping[str, str | None]) -> bytes | None:
    """Run a subscription's filters, delivery and content alike, in their order, on one
    published item: a drop stops the run, and so does a failing content filter.

    :param meta: the subscription's meta (``Grip-Set-Meta``).
    :param publish_meta: the item's ``meta``.
    :param prev_ids: the connection's channels and their prev-ids.
    :returns: the content to send, or ``None`` when a delivery filter dropped the item.
    :raises FilterError: a content filter failed.
    """
    for name in names:
        if name in DELIVERY_FILTERS:
            if not _delivers(name, meta, publish_meta, prev_ids):
                return None
        else:
            content = _content(name, content, meta, prev_ids)
    return content


def filter_response(names: Sequence[str], body: bytes, meta: Mapping[str, str],
                    prev_ids: Mapping[str, str | None]) -> bytes:
    """Run the response-content filters among ``names`` (each once) on a response body
    written to a stream: the initial one, or a next link's.

    :raises FilterError: a filter failed.
    """
    if "build-id" in names:
        body = build_id(body, meta, prev_ids)
    return body
