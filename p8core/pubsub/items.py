"""Publish items: the JSON an input receives, parsed once and validated as Pushpin does.

Messages follow Pushpin 1.36 word for word (``spec/publishing.md`` §1, §2.2), so a
publisher sees the same ``Invalid format: ...`` line from p8 as from Pushpin.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from p8core.errors import PublishError

__all__ = [
    "STANDARD_FORMATS",
    "ParsedPublish",
    "PublishFormat",
    "PublishItem",
    "from_tnetstring",
    "parse_items",
    "parse_publish_body",
]

#: The format names Pushpin knows, in the order it parses them. They are looked up at the
#: item's top level when ``formats`` is absent, even if no enabled plugin owns them.
STANDARD_FORMATS: tuple[str, ...] = ("http-response", "http-stream", "ws-message")

_STANDARD_SET = frozenset(STANDARD_FORMATS)

# Item fields of their own: never taken for a format name at the item's top level.
_ITEM_FIELDS = frozenset({"channel", "id", "prev-id", "formats", "meta", "size", "no-seq"})

_PN = "publish item object"

# A JSON escape of a UTF-16 surrogate (``\ud800``-``\udfff``); only then can a parsed
# string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class PublishFormat(ABC):
    """A publish format owned by a plugin: parses the object under ``formats[name]``.

    ``parse`` runs once per publish, before the item reaches the hub, and its result is
    shared by every subscriber that takes this format: a plugin should pre-encode there
    (e.g. framed bytes ready to write), so fan-out does no per-subscriber work.
    """

    #: The key under an item's ``formats`` (``"http-stream"``); also the ``format`` of the
    #: subscribers that take it.
    name: ClassVar[str]

    @abstractmethod
    def parse(self, raw: Mapping[str, object], where: str) -> object:
        """Validate and prepare one format object of one item.

        :param raw: the format object, string keys. Values are JSON values, except for
            items from tnetstring inputs (ZeroMQ), whose strings arrive as raw ``bytes``:
            accept ``bytes`` wherever a string is expected.
        :param where: the quoted format name as Pushpin's messages start (``'http-stream'``).
        :returns: the parsed payload, stored in ``PublishItem.formats[name]``.
        :raises PublishError: with Pushpin's message, e.g.
            ``'http-stream' contains 'content' with wrong type``; an empty message is allowed
            (Pushpin's answer to an unknown ``action``).
        """


@dataclass(frozen=True, slots=True)
class PublishItem:
    """One published item, its formats already parsed by the plugins that own them."""

    channel: str
    #: format name -> the payload its PublishFormat parsed; only formats an enabled plugin owns.
    formats: Mapping[str, object]
    id: str | None = None
    prev_id: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    no_seq: bool = False
    size: int | None = None

    def __reduce__(self) -> tuple[type[PublishItem], tuple[object, ...]]:
        # Pickled by a supervisor for its workers: the constructor's arguments are
        # quicker to take apart and put together than the dataclass state.
        return PublishItem, (self.channel, self.formats, self.id, self.prev_id, self.meta,
                             self.no_seq, self.size)

    @classmethod
    def from_json(
        cls,
        raw: object,
        known: Mapping[str, PublishFormat],
        *,
        channel: str | None = None,
    ) -> tuple[PublishItem, int]:
        """Validate one item of a JSON publish, in Pushpin's order of checks.

        Format names no enabled plugin owns are skipped and counted. An item whose formats
        are all unknown is accepted with no formats (Pushpin accepts ``{"formats": {"x": 1}}``
        too); ``no formats specified`` only when the item names no format at all.
        JSON ``null`` for ``id``, ``prev-id``, ``meta`` or ``formats`` counts as absent.

        :param raw: the decoded JSON value of the item.
        :param known: the enabled format plugins by name.
        :param channel: when non-empty (the SUB input's frame 0), used instead of the item's
            own ``channel``, which is then not read.
        :returns: the item and the number of format names ignored.
        :raises PublishError: the message without the ``Invalid format: `` prefix.
        """
        if not isinstance(raw, dict):
            raise PublishError(f"{_PN} is not an object")

        if not channel:
            if "channel" not in raw:
                raise PublishError(f"{_PN} does not contain 'channel'")
            vchannel = raw["channel"]
            if not isinstance(vchannel, str):
                raise PublishError(f"{_PN} contains 'channel' with wrong type")
            channel = vchannel

        item_id = _optional_str(raw, "id")
        prev_id = _optional_str(raw, "prev-id")

        vformats = raw.get("formats")
        if vformats is None:
            vformats = {
                name: value
                for name, value in raw.items()
                if name in _STANDARD_SET or (name in known and name not in _ITEM_FIELDS)
            }
        elif not isinstance(vformats, dict):
            raise PublishError(f"{_PN} contains 'formats' with wrong type")
        if not vformats:
            raise PublishError("no formats specified")

        formats: dict[str, object] = {}
        ignored = 0
        for name in _format_order(vformats):
            plugin = known.get(name)
            if plugin is None:
                ignored += 1
                continue
            value = vformats[name]
            where = f"'{name}'"
            if not isinstance(value, dict):
                raise PublishError(f"{where} is not an object")
            formats[name] = plugin.parse(value, where)

        meta = raw.get("meta")
        if meta is None:
            meta = {}
        elif not isinstance(meta, dict):
            raise PublishError(f"{_PN} contains 'meta' with wrong type")
        else:
            bad = [key for key, value in meta.items() if not isinstance(value, str)]
            if bad:
                # Pushpin walks JSON objects in key order: the smallest bad key is named.
                raise PublishError(f"'meta' contains '{min(bad)}' with wrong type")

        size: int | None = None
        if "size" in raw:
            vsize = raw["size"]
            if isinstance(vsize, float) and vsize.is_integer():
                vsize = int(vsize)
            if not isinstance(vsize, int) or isinstance(vsize, bool):
                raise PublishError(f"{_PN} contains 'size' with wrong type")
            if vsize < 0:
                raise PublishError(f"{_PN} contains 'size' with invalid value")
            size = vsize

        no_seq = False
        if "no-seq" in raw:
            vno_seq = raw["no-seq"]
            if not isinstance(vno_seq, bool):
                raise PublishError(f"{_PN} contains 'no-seq' with wrong type")
            no_seq = vno_seq

        item = cls(channel, formats, item_id, prev_id, meta, no_seq, size)
        return item, ignored


def from_tnetstring(raw: object) -> object:
    """Turn a tnetstring item (byte-string keys and values) into the shape ``from_json``
    reads: keys become ``str`` everywhere; the item's own fields (``channel``, ``id``,
    ``prev-id``, ``meta`` values) become ``str``; values inside format objects stay
    ``bytes``, binary-safe, for the format plugins (``content``, ``body``, ...).

    Text that is not UTF-8 in the item's own fields is kept as ``bytes``, which
    ``from_json`` then rejects as the wrong type.
    """
    if not isinstance(raw, dict):
        return raw
    item = _str_keys(raw)
    for name in ("channel", "id", "prev-id"):
        if isinstance(value := item.get(name), bytes):
            item[name] = _text(value)
    if isinstance(meta := item.get("meta"), dict):
        item["meta"] = {k: _text(v) if isinstance(v, bytes) else v for k, v in meta.items()}
    return item


def _str_keys(value: object) -> Any:
    """Decode the keys of every dict in ``value`` (tnetstring keys are bytes)."""
    if isinstance(value, dict):
        return {_text(k) if isinstance(k, bytes) else k: _str_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_str_keys(v) for v in value]
    return value


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


@dataclass(frozen=True, slots=True)
class ParsedPublish:
    """A whole publish request, every item valid."""

    items: tuple[PublishItem, ...]
    #: format names skipped over all items because no enabled plugin owns them.
    ignored_formats: int


def parse_publish_body(body: bytes, known: Mapping[str, PublishFormat]) -> ParsedPublish:
    """Parse the body of ``POST /publish/``: ``{"items": [item, ...]}``, all or nothing.

    The body must be UTF-8 JSON (no BOM, no ``NaN``/``Infinity``). Lone UTF-16 surrogates
    written as escapes become U+FFFD, so every string is encodable as UTF-8.

    :raises PublishError: the line Pushpin answers with status 400, without its newline:
        ``Body is not valid JSON.``, ``Invalid format.`` or ``Invalid format: <reason>``.
    """
    try:
        text = body.decode("utf-8")
        doc: object = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        # UnicodeDecodeError and json.JSONDecodeError are both ValueErrors.
        raise PublishError("Body is not valid JSON.") from None
    if _SURROGATE_ESCAPE.search(text):
        doc = _replace_lone_surrogates(doc)

    if not isinstance(doc, dict):
        raise PublishError("Invalid format.")
    if "items" not in doc:
        raise PublishError("Invalid format: object does not contain 'items'")
    return parse_items(doc["items"], known)


def parse_items(vitems: object, known: Mapping[str, PublishFormat]) -> ParsedPublish:
    """Parse the ``items`` of a publish (JSON-shaped, see ``from_tnetstring``), all or
    nothing.

    :raises PublishError: ``Invalid format: <reason>``, as ``parse_publish_body``.
    """
    if not isinstance(vitems, list):
        raise PublishError("Invalid format: object contains 'items' with wrong type")

    items: list[PublishItem] = []
    ignored = 0
    for vitem in vitems:
        try:
            item, skipped = PublishItem.from_json(vitem, known)
        except PublishError as e:
            raise PublishError(f"Invalid format: {e}") from None
        items.append(item)
        ignored += skipped
    return ParsedPublish(tuple(items), ignored)


def _optional_str(raw: Mapping[str, object], key: str) -> str | None:
    """An optional string field of an item; ``null`` counts as absent."""
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise PublishError(f"{_PN} contains '{key}' with wrong type")


def _format_order(vformats: Mapping[str, object]) -> list[str]:
    """Pushpin's three formats in its parse order, then the others as written."""
    names = [name for name in STANDARD_FORMATS if name in vformats]
    names.extend(name for name in vformats if name not in _STANDARD_SET)
    return names


def _reject_constant(token: str) -> object:
    """Refuse ``NaN``, ``Infinity`` and ``-Infinity``, which JSON does not have."""
    raise ValueError(f"not JSON: {token}")


def _fix_str(s: str) -> str:
    """``s`` with each lone surrogate replaced by U+FFFD."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return s


def _replace_lone_surrogates(doc: object) -> object:
    """Rewrite every string (keys too) of a parsed JSON value in place, iteratively."""
    if isinstance(doc, str):
        return _fix_str(doc)
    stack: list[object] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, str):
                    node[i] = _fix_str(value)
                elif isinstance(value, list | dict):
                    stack.append(value)
        elif isinstance(node, dict):
            pairs: list[tuple[str, object]] = []
            for key, value in node.items():
                if isinstance(value, str):
                    value = _fix_str(value)
                elif isinstance(value, list | dict):
                    stack.append(value)
                pairs.append((_fix_str(key), value))
            # Rebuilt whole, so the keys keep their order.
            node.clear()
            node.update(pairs)
    return doc
