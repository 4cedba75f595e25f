"""The memory store's rings, payload sizes, and which items a new hold resumes with:
sans-I/O, with the time passed in."""

from __future__ import annotations

import random

from p8_history.memory import MemoryStore
from p8_history.resume import last_event_id, resume
from p8_history.settings import HistorySettings
from p8_history.store import payload_bytes
from p8_http_stream.format import StreamMessage

from p8core import Channel, HeldRequest, Hold, Instruct, PublishItem
from p8core.proxy.routes import Route


def item(n: int, *, channel: str = "c", size: int = 10, prev: bool = False,
         fmt: str = "http-stream") -> PublishItem:
    payload = StreamMessage(content=b"x" * size)
    return PublishItem(channel, {fmt: payload}, str(n), str(n - 1) if prev else None)


def store(**settings: object) -> MemoryStore:
    return MemoryStore(HistorySettings(**{"max_items": 100, **settings}))  # type: ignore[arg-type]


def numbers(items: list[PublishItem] | None) -> list[int] | None:
    return None if items is None else [int(i.id or 0) for i in items]


def test_items_after_an_id_come_oldest_first() -> None:
    s = store()
    for n in range(1, 6):
        s.append(item(n), now=0)
    assert numbers(s.items_after("c", "2", now=0)) == [3, 4, 5]
    assert s.items_after("c", "5", now=0) == []
    assert s.items_after("c", "9", now=0) is None
    assert s.items_after("other", "2", now=0) is None


def test_the_ring_never_holds_more_than_max_items_or_max_bytes() -> None:
    rng = random.Random(7)
    s = store(max_items=20, max_bytes=500)
    for n in range(1, 2000):
        s.append(item(n, size=rng.randrange(0, 120)), now=0)
        sizes = s.sizes()
        assert sizes["items"] <= 20 and sizes["bytes"] <= 500
    # Whatever was evicted, what is held reaches back without a hole.
    newest = 1999
    oldest = newest - s.sizes()["items"] + 1
    assert numbers(s.items_after("c", str(oldest), now=0)) == list(range(oldest + 1, 2000))
    assert s.items_after("c", str(oldest - 1), now=0) is None


def test_an_item_larger_than_max_bytes_empties_its_channel() -> None:
    s = store(max_bytes=100)
    s.append(item(1), now=0)
    s.append(item(2, size=101), now=0)
    assert s.items_after("c", "1", now=0) is None, "item 2 could not be replayed after 1"
    s.append(item(3), now=0)
    assert numbers(s.items_after("c", "3", now=0)) == []
    assert s.sizes() == {"channels": 1, "items": 1, "bytes": 10 + len("send")}


def test_items_older_than_max_age_are_gone() -> None:
    s = store(max_age=60)
    s.append(item(1), now=0)
    s.append(item(2), now=30)
    s.append(item(3), now=61)
    assert s.items_after("c", "1", now=61) is None
    assert numbers(s.items_after("c", "2", now=61)) == [3]
    assert s.items_after("c", "3", now=200) is None
    assert s.sizes()["channels"] == 0, "an emptied ring is dropped"


def test_the_least_recently_published_channel_goes_first() -> None:
    s = store(max_channels=2)
    s.append(item(1, channel="a"), now=0)
    s.append(item(1, channel="b"), now=0)
    s.append(item(2, channel="a"), now=0)
    s.append(item(1, channel="c"), now=0)
    assert s.items_after("b", "1", now=0) is None
    assert numbers(s.items_after("a", "1", now=0)) == [2]
    assert s.sizes()["channels"] == 2


def test_a_repeated_id_resumes_after_its_latest_use() -> None:
    s = store(max_items=3)
    for n in (1, 2, 1, 3):
        s.append(item(n), now=0)
    assert numbers(s.items_after("c", "1", now=0)) == [3]
    s.append(item(4), now=0)  # evicts 2; the first "1" was evicted already
    assert numbers(s.items_after("c", "1", now=0)) == [3, 4]


def test_payload_bytes_counts_every_string_and_bytes_inside() -> None:
    assert payload_bytes(StreamMessage(content=b"hello")) == len("hello") + len("send")
    assert payload_bytes({"a": (b"xy", "z")}) == 4
    assert payload_bytes(42) == 0


def hold(*channels: Channel, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Hold:
    request = HeldRequest(b"GET", b"/", headers, b"")
    return Hold(Instruct(hold="stream", channels=channels), request, Route(targets=("test",)))


def test_resume_after_a_prev_id_needs_a_chain() -> None:
    s = store()
    for n in range(1, 6):
        s.append(item(n, prev=True), now=0)
    s.append(item(9, channel="loose"), now=0)
    s.append(item(10, channel="loose"), now=0)
    found = resume(s, hold(Channel("c", prev_id="2")), "http-stream", 0, use_last_event_id=True)
    assert (numbers(found.items), found.served, found.missed) == ([3, 4, 5], 1, 0)
    # Items without prev-id would be gaps to the hold: left to the backend.
    found = resume(s, hold(Channel("loose", prev_id="9")), "http-stream", 0,
                   use_last_event_id=True)
    assert (found.items, found.served, found.missed) == ([], 0, 1)


def test_resume_from_last_event_id_takes_any_items_of_the_format() -> None:
    s = store()
    s.append(item(1), now=0)
    s.append(item(2, fmt="ws-message"), now=0)
    s.append(item(3), now=0)
    lei = ((b"last-event-id", b" 1 "),)
    found = resume(s, hold(Channel("c"), Channel("d"), headers=lei), "http-stream", 0,
                   use_last_event_id=True)
    assert (numbers(found.items), found.served, found.missed) == ([3], 1, 0)
    found = resume(s, hold(Channel("c"), headers=lei), "http-stream", 0,
                   use_last_event_id=False)
    assert (found.items, found.served, found.missed) == ([], 0, 0)
    found = resume(s, hold(Channel("d"), headers=lei), "http-stream", 0,
                   use_last_event_id=True)
    assert (found.items, found.served, found.missed) == ([], 0, 1)


def test_last_event_id_header() -> None:
    assert last_event_id(((b"last-event-id", b"42"),)) == "42"
    assert last_event_id(((b"last-event-id", b"  "),)) is None
    assert last_event_id(()) is None
