"""Base64 read as Pushpin reads it (Qt's default decoder): for ``body-bin``/``content-bin``
of publish items and GRIP instructions, and ``Grip-Keep-Alive: ...; format=base64``."""

from __future__ import annotations

import base64
import binascii
from typing import Final

__all__ = ["decode_base64"]

_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_JUNK: Final = bytes(b for b in range(256) if b not in _ALPHABET)


def decode_base64(data: str | bytes) -> bytes:
    """Decode base64 leniently: characters outside the alphabet (padding included) are
    skipped and leftover bits dropped. Never fails."""
    # The alphabet is ASCII: whatever else a string holds is skipped anyway.
    raw = data.encode("ascii", "ignore") if isinstance(data, str) else data
    raw = raw.translate(None, _JUNK)
    extra = len(raw) % 4
    if extra == 1:
        raw = raw[:-1]
    elif extra:
        raw += b"=" * (4 - extra)
    try:
        return base64.b64decode(raw)
    except binascii.Error:  # pragma: no cover - the input is clean by construction
        return b""
