"""Subscription filters for response holds (grip.md §8), sans-I/O.

*Delivery* filters decide whether an item reaches a subscription: ``skip-self``,
``skip-users``, ``require-sub``. *Content* filters transform the body: ``var-subst``.
``build-id`` is a content filter too; it counts for the content-filter agreement rule but
is not applied. Other names are accepted and ignored, as Pushpin 1.36 does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

__all__ = ["CONTENT_FILTERS", "FilterError", "apply_content_filters", "content_filters",
           "delivery_allowed", "var_subst"]

#: The filters that transform content, in no particular order.
CONTENT_FILTERS = frozenset({"var-subst", "build-id"})


class FilterError(ValueError):
    """A content filter cannot process the content (an unknown variable, say)."""


def delivery_allowed(filters: Sequence[str], sub_meta: Mapping[str, str],
                     pub_meta: Mapping[str, str], subscribed: Collection[str]) -> bool:
    """Whether an item passes a subscription's delivery filters.

    :param filters: the subscription's filter names (``Grip-Channel: c; filter=...``).
    :param sub_meta: the subscription's meta (``Grip-Set-Meta``).
    :param pub_meta: the item's ``meta``.
    :param subscribed: every channel the connection is subscribed to.
    """
    user = sub_meta.get("user", "")
    for name in filters:
        if name == "skip-self":
            if user and pub_meta.get("sender") == user:
                return False
        elif name == "skip-users":
            skip = pub_meta.get("skip_users", "")
            if user and user in (u.strip() for u in skip.split(",")):
                return False
        elif name == "require-sub":
            required = pub_meta.get("require_sub", "")
            if required and required not in subscribed:
                return False
    return True


def content_filters(filters: Sequence[str]) -> tuple[str, ...]:
    """The content filters among a subscription's filters, in their order."""
    return tuple(f for f in filters if f in CONTENT_FILTERS)


def apply_content_filters(filters: Sequence[str], data: bytes,
                          sub_meta: Mapping[str, str]) -> bytes:
    """Run ``data`` through the subscription's content filters, in order.

    :raises FilterError: a filter failed; nothing should be sent.
    """
    for name in filters:
        if name == "var-subst":
            data = var_subst(data, sub_meta)
    return data


def var_subst(data: bytes, meta: Mapping[str, str]) -> bytes:
    """Replace ``%(name)s`` with meta ``name`` and ``%%`` with ``%``.

    :raises FilterError: an unknown variable, or a ``%`` starting anything else.
    """
    at = data.find(b"%")
    if at < 0:
        return data
    out = bytearray(data[:at])
    n = len(data)
    while at >= 0:
        nxt = data[at + 1:at + 2]
        if nxt == b"%":
            out += b"%"
            end = at + 2
        elif nxt == b"(":
            close = data.find(b")", at + 2)
            if close < 0 or data[close + 1:close + 2] != b"s":
                raise FilterError("var-subst: bad directive")
            name = data[at + 2:close].decode("utf-8", "replace")
            if name not in meta:
                raise FilterError(f"var-subst: unknown variable '{name}'")
            out += meta[name].encode("utf-8")
            end = close + 2
        else:
            raise FilterError("var-subst: bad directive")
        at = data.find(b"%", end)
        out += data[end:at if at >= 0 else n]
    return bytes(out)
