"""Fields of publish format objects, checked as Pushpin 1.36 checks them (publishing.md §1).

The building blocks of :meth:`PublishFormat.parse <p8core.pubsub.items.PublishFormat.parse>`
implementations: a value from a JSON input is a JSON value, one from a tnetstring input
arrives as ``bytes`` wherever JSON has a string. ``where`` is the quoted format name that
starts Pushpin's messages (``'http-stream'``); each check raises
:class:`~p8core.errors.PublishError` with the message Pushpin answers.
"""

from __future__ import annotations

from collections.abc import Mapping

from p8core.codec.b64 import decode_base64
from p8core.errors import PublishError

__all__ = [
    "as_bytes",
    "as_text",
    "filter_names",
    "from_base64",
    "text",
    "tnetstring_input",
    "to_bytes",
    "wrong_type",
]


def wrong_type(where: str, key: str) -> PublishError:
    """``<where> contains '<key>' with wrong type``."""
    return PublishError(f"{where} contains '{key}' with wrong type")


def tnetstring_input(raw: Mapping[str, object]) -> bool:
    """Whether a format object came from a tnetstring input (any value is ``bytes``):
    such objects carry raw ``content``/``body`` and have no ``content-bin``/``body-bin``."""
    return any(isinstance(value, bytes) for value in raw.values())


def text(value: object, errors: str = "strict") -> str | None:
    """A string value: ``str``, or ``bytes`` decoded as UTF-8 (``errors`` as for
    :meth:`bytes.decode`). ``None`` for any other value, and, with ``errors="strict"``, for
    bytes that are not UTF-8."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8", errors)
        except UnicodeDecodeError:
            return None
    return None


def as_text(value: object, key: str, where: str, errors: str = "strict") -> str:
    """The string value of member ``key``, as :func:`text` reads it.

    :raises PublishError: ``<where> contains '<key>' with wrong type``.
    """
    result = text(value, errors)
    if result is None:
        raise wrong_type(where, key)
    return result


def to_bytes(value: object) -> bytes | None:
    """Data given as a string (sent as UTF-8) or, from a tnetstring input, as raw ``bytes``;
    ``None`` for any other value."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    return None


def as_bytes(value: object, key: str, where: str) -> bytes:
    """The data of member ``key`` (``content``, ``body``), as :func:`to_bytes` reads it.

    :raises PublishError: ``<where> contains '<key>' with wrong type``.
    """
    data = to_bytes(value)
    if data is None:
        raise wrong_type(where, key)
    return data


def from_base64(value: object, key: str, where: str) -> bytes:
    """The data of member ``key`` given as base64 (``content-bin``, ``body-bin``), read
    leniently as Pushpin reads it.

    :raises PublishError: not a string: ``<where> contains '<key>' with wrong type``.
    """
    if not isinstance(value, str):
        raise wrong_type(where, key)
    return decode_base64(value)


def filter_names(value: object, where: str, *, errors: str = "strict",
                 element_error: str | None = None) -> tuple[str, ...]:
    """The names of a ``content-filters`` list, in order (grip.md §8).

    :param errors: how the elements of a tnetstring input are decoded (see :func:`text`).
    :param element_error: the message for an element that is not a string; by default the
        one for a value that is not a list.
    :raises PublishError: not a list (``<where> contains 'content-filters' with wrong
        type``), or an element that is not a string.
    """
    if not isinstance(value, list):
        raise wrong_type(where, "content-filters")
    names: list[str] = []
    for element in value:
        name = text(element, errors)
        if name is None:
            if element_error is None:
                raise wrong_type(where, "content-filters")
            raise PublishError(element_error)
        names.append(name)
    return tuple(names)
