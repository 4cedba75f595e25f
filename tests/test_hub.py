"""The hub: subscriptions, de-duplication, prev-id ordering, fan-out (publishing.md §5, §6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p8core.pubsub.hub import Hub
from p8core.pubsub.items import PublishItem

STREAM, RESPONSE, WS = "http-stream", "http-response", "ws-message"


class FakeSubscriber:
    """Records the ids (or channels, for id-less items) it was handed."""

    def __init__(
        self,
        fmt: str = STREAM,
        on_deliver: Callable[[FakeSubscriber, PublishItem], None] | None = None,
    ) -> None:
        self._format = fmt
        self.on_deliver = on_deliver
        self.got: list[str | None] = []
        self.items: list[PublishItem] = []

    @property
    def format(self) -> str:
        return self._format

    def deliver(self, item: PublishItem) -> None:
        self.got.append(item.id)
        self.items.append(item)
        if self.on_deliver is not None:
            self.on_deliver(self, item)


def item(
    id: str | None = None,
    prev_id: str | None = None,
    *,
    channel: str = "c",
    formats: tuple[str, ...] = (STREAM,),
    no_seq: bool = False,
) -> PublishItem:
    return PublishItem(
        channel=channel,
        formats={f: f"{f}:{id}".encode() for f in formats},
        id=id,
        prev_id=prev_id,
        no_seq=no_seq,
    )


def hub_with(*subs: FakeSubscriber, channel: str = "c", **kwargs: Any) -> Hub:
    hub = Hub(**kwargs)
    for sub in subs:
        hub.subscribe(channel, sub, 0.0)
    return hub


# ---- fan-out and routing ---------------------------------------------------------------


def test_fan_out_to_many_in_subscription_order() -> None:
    order: list[int] = []
    subs = [
        FakeSubscriber(on_deliver=lambda s, i, n=n: order.append(n))  # type: ignore[misc]
        for n in range(2000)
    ]
    hub = hub_with(*subs)
    assert hub.publish(item("1"), 1.0) == 2000
    assert order == list(range(2000))
    assert all(s.got == ["1"] for s in subs)
    assert hub.stats.delivered == 2000
    assert hub.stats.published == 1


def test_each_subscriber_gets_the_shared_payload_object() -> None:
    a, b = FakeSubscriber(), FakeSubscriber()
    hub = hub_with(a, b)
    it = item("1")
    hub.publish(it, 1.0)
    assert a.items[0] is it and b.items[0] is it


def test_format_routing() -> None:
    stream, response, ws = FakeSubscriber(STREAM), FakeSubscriber(RESPONSE), FakeSubscriber(WS)
    hub = hub_with(stream, response, ws)
    assert hub.publish(item("1", formats=(STREAM,)), 1.0) == 1
    assert hub.publish(item("2", formats=(RESPONSE, WS)), 1.0) == 2
    assert hub.publish(item("3", formats=("sse",)), 1.0) == 0
    assert hub.publish(item("4", formats=(STREAM, RESPONSE, WS)), 1.0) == 3
    assert stream.got == ["1", "4"]
    assert response.got == ["2", "4"]
    assert ws.got == ["2", "4"]


def test_channels_are_separate() -> None:
    a, b = FakeSubscriber(), FakeSubscriber()
    hub = Hub()
    hub.subscribe("a", a, 0.0)
    hub.subscribe("b", b, 0.0)
    hub.publish(item("1", channel="a"), 1.0)
    assert (a.got, b.got) == (["1"], [])
    assert hub.publish(item("1", channel="nobody"), 1.0) == 0


def test_one_subscriber_on_several_channels() -> None:
    sub = FakeSubscriber()
    hub = Hub()
    hub.subscribe("a", sub, 0.0)
    hub.subscribe("b", sub, 0.0)
    hub.publish(item("1", channel="a"), 1.0)
    hub.publish(item("2", channel="b"), 1.0)
    assert sub.got == ["1", "2"]


# ---- subscribe / unsubscribe -----------------------------------------------------------


def test_subscribe_returns_true_only_for_the_first() -> None:
    hub = Hub()
    a, b = FakeSubscriber(), FakeSubscriber(RESPONSE)
    assert hub.subscribe("c", a, 0.0) is True
    assert hub.subscribe("c", b, 0.0) is False
    assert hub.subscribe("c", a, 0.0) is False  # twice: a no-op
    assert hub.subscriber_count("c") == 2
    hub.unsubscribe("c", a, 1.0)
    hub.unsubscribe("c", b, 1.0)
    assert hub.subscriber_count("c") == 0
    assert hub.channels() == 0
    assert hub.subscribe("c", a, 2.0) is True


def test_subscribing_twice_delivers_once() -> None:
    a = FakeSubscriber()
    hub = hub_with(a, a)
    assert hub.publish(item("1"), 1.0) == 1
    assert a.got == ["1"]


def test_unsubscribe_unknown_is_a_no_op() -> None:
    hub = Hub()
    a, b = FakeSubscriber(), FakeSubscriber()
    hub.unsubscribe("c", a, 0.0)
    hub.subscribe("c", a, 0.0)
    hub.unsubscribe("c", b, 0.0)
    hub.unsubscribe("other", a, 0.0)
    assert hub.subscriber_count("c") == 1


def test_unsubscribed_subscriber_gets_nothing() -> None:
    a, b = FakeSubscriber(), FakeSubscriber()
    hub = hub_with(a, b)
    hub.unsubscribe("c", a, 1.0)
    hub.publish(item("1"), 1.0)
    assert (a.got, b.got) == ([], ["1"])


def test_unsubscribing_itself_during_delivery() -> None:
    hub = Hub()

    def leave(sub: FakeSubscriber, _: PublishItem) -> None:
        hub.unsubscribe("c", sub, 1.0)

    subs = [FakeSubscriber(on_deliver=leave if n % 2 else None) for n in range(10)]
    for sub in subs:
        hub.subscribe("c", sub, 0.0)
    assert hub.publish(item("1"), 1.0) == 10
    assert all(s.got == ["1"] for s in subs)
    assert hub.publish(item("2"), 2.0) == 5
    assert [len(s.got) for s in subs] == [2, 1] * 5


def test_every_subscriber_leaving_during_delivery() -> None:
    hub = Hub()
    unsubscribed: list[str] = []
    hub.on_unsubscribed.append(unsubscribed.append)

    def leave(sub: FakeSubscriber, _: PublishItem) -> None:
        hub.unsubscribe("c", sub, 1.0)

    subs = [FakeSubscriber(fmt, on_deliver=leave) for fmt in (STREAM, STREAM, WS)]
    for sub in subs:
        hub.subscribe("c", sub, 0.0)
    assert hub.publish(item("1", formats=(STREAM, WS)), 1.0) == 3
    assert unsubscribed == ["c"]
    assert hub.channels() == 0
    assert hub.last_id("c") is None  # forgotten when the channel went


def test_subscriber_removed_by_an_earlier_delivery_is_skipped() -> None:
    hub = Hub()
    victim = FakeSubscriber()

    def kick(_: FakeSubscriber, __: PublishItem) -> None:
        hub.unsubscribe("c", victim, 1.0)

    first = FakeSubscriber(on_deliver=kick)
    hub.subscribe("c", first, 0.0)
    hub.subscribe("c", victim, 0.0)
    assert hub.publish(item("1"), 1.0) == 1
    assert victim.got == []


def test_subscriber_added_during_delivery_waits_for_the_next_item() -> None:
    hub = Hub()
    late = FakeSubscriber()

    def invite(_: FakeSubscriber, __: PublishItem) -> None:
        hub.subscribe("c", late, 1.0)

    hub.subscribe("c", FakeSubscriber(on_deliver=invite), 0.0)
    assert hub.publish(item("1"), 1.0) == 1
    assert hub.publish(item("2"), 2.0) == 2
    assert late.got == ["2"]


# ---- listeners -------------------------------------------------------------------------


def test_listeners_fire_once_each() -> None:
    hub = Hub()
    events: list[tuple[str, str]] = []
    hub.on_subscribed.append(lambda ch: events.append(("sub", ch)))
    hub.on_unsubscribed.append(lambda ch: events.append(("unsub", ch)))
    a, b = FakeSubscriber(), FakeSubscriber(WS)
    hub.subscribe("c", a, 0.0)
    hub.subscribe("c", b, 0.0)
    hub.unsubscribe("c", a, 1.0)
    assert events == [("sub", "c")]
    hub.unsubscribe("c", b, 1.0)
    assert events == [("sub", "c"), ("unsub", "c")]


def test_on_delivered_reports_each_item_and_format() -> None:
    seen: list[tuple[str | None, str, int]] = []
    hub = hub_with(FakeSubscriber(), FakeSubscriber(), FakeSubscriber(WS))
    hub.on_delivered.append(lambda it, fmt, n: seen.append((it.id, fmt, n)))
    hub.publish(item("1"), 1.0)
    hub.publish(item("3", "2"), 1.0)  # parked: not reported yet
    hub.publish(item("2", "1", formats=(STREAM, WS)), 1.0)
    assert seen == [("1", STREAM, 2), ("2", STREAM, 2), ("2", WS, 1), ("3", STREAM, 2)]
    assert hub.stats.delivered_by_format == {STREAM: 6, WS: 1}


def test_on_sent_sees_each_item_once_in_the_order_it_is_sent() -> None:
    """Subscribed or not, parked and released (in time or late), never a duplicate nor
    an item dropped by ordering."""
    sent: list[str | None] = []
    hub = hub_with(FakeSubscriber(), message_wait=5.0)
    hub.on_sent.append(lambda it: sent.append(it.id))
    hub.publish(item("0", channel="nobody"), 0.0)
    hub.publish(item("1"), 0.0)
    hub.publish(item("1"), 0.0)  # a duplicate
    hub.publish(item("3", "2"), 0.0)  # parked
    hub.publish(item("9", "2"), 0.0)  # same prev-id already parked: dropped
    hub.publish(item("2", "1"), 0.0)  # releases 3
    hub.publish(item("5", "4"), 0.0)  # parked until message_wait
    hub.tick(6.0)
    assert sent == ["0", "1", "2", "3", "5"]


def test_on_changed_and_counts_follow_every_subscriber() -> None:
    hub = Hub()
    changed: list[str] = []
    hub.on_changed.append(changed.append)
    a, b, c = FakeSubscriber(), FakeSubscriber(), FakeSubscriber(WS)
    for sub in (a, b, c):
        hub.subscribe("c", sub, 0.0)
    hub.subscribe("c", a, 0.0)  # already there: no change
    hub.subscribe("d", a, 0.0)
    assert changed == ["c", "c", "c", "d"]
    assert hub.subscriber_counts("c") == {STREAM: 2, WS: 1}
    assert hub.subscriptions_by_format() == {STREAM: 3, WS: 1}
    hub.unsubscribe("c", c, 1.0)
    hub.unsubscribe("c", c, 1.0)  # gone already: no change
    assert changed[4:] == ["c"]
    assert hub.subscriber_counts("c") == {STREAM: 2}
    assert hub.subscriber_counts("nobody") == {}


# ---- id cache --------------------------------------------------------------------------


def test_duplicate_id_within_ttl_is_dropped() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub, id_cache_ttl=60.0)
    assert hub.publish(item("5"), 100.0) == 1
    assert hub.publish(item("5"), 159.9) == 0
    assert sub.got == ["5"]
    assert hub.stats.duplicates_dropped == 1
    assert hub.publish(item("5"), 160.0) == 1  # ttl passed, even without a tick
    assert sub.got == ["5", "5"]


def test_duplicate_id_after_tick_expiry() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub, id_cache_ttl=10.0)
    hub.publish(item("a"), 0.0)
    hub.publish(item("b"), 5.0)
    hub.tick(10.0)
    assert hub.publish(item("a"), 10.5) == 1
    assert hub.publish(item("b"), 10.5) == 0


def test_id_cache_is_per_channel_and_skips_items_without_id() -> None:
    a, b = FakeSubscriber(), FakeSubscriber()
    hub = Hub()
    hub.subscribe("a", a, 0.0)
    hub.subscribe("b", b, 0.0)
    hub.publish(item("1", channel="a"), 1.0)
    hub.publish(item("1", channel="b"), 1.0)
    hub.publish(item(None, channel="a"), 1.0)
    hub.publish(item(None, channel="a"), 1.0)
    assert a.got == ["1", None, None]
    assert b.got == ["1"]


def test_id_cache_applies_to_unsequenced_items() -> None:
    hub = Hub()
    assert hub.publish(item("5"), 1.0) == 0  # no subscription: unsequenced, but remembered
    sub = FakeSubscriber()
    hub.subscribe("c", sub, 2.0)
    assert hub.publish(item("5"), 3.0) == 0
    assert hub.publish(item("6", no_seq=True), 3.0) == 1
    assert hub.publish(item("6", no_seq=True), 3.0) == 0
    assert hub.stats.duplicates_dropped == 2


def test_id_cache_off() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub, id_cache_ttl=0.0)
    hub.publish(item("5"), 1.0)
    hub.publish(item("5"), 1.0)
    assert sub.got == ["5", "5"]


def test_a_re_remembered_id_is_not_expired_by_its_old_entry() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub, id_cache_ttl=10.0)
    hub.publish(item("x"), 0.0)  # remembered until 10
    hub.publish(item("x"), 12.0)  # expired, delivered, remembered until 22
    hub.tick(12.5)
    assert hub.publish(item("x"), 15.0) == 0


# ---- ordering --------------------------------------------------------------------------


def test_spec_ordering_example() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub, message_wait=5.0)
    assert hub.publish(item("1"), 0.0) == 1
    assert hub.publish(item("3", "2"), 0.1) == 0  # parked
    assert sub.got == ["1"]
    assert hub.publish(item("2", "1"), 0.2) == 2  # then 3, together
    assert sub.got == ["1", "2", "3"]
    assert hub.last_id("c") == "3"

    assert hub.publish(item("5", "4"), 1.0) == 0  # parked
    hub.tick(2.0)
    hub.tick(5.9)
    assert sub.got == ["1", "2", "3"]
    hub.tick(6.0)  # waited message_wait
    assert sub.got == ["1", "2", "3", "5"]
    assert hub.last_id("c") == "5"
    assert hub.stats.parked == 2
    assert hub.stats.parked_released_late == 1


def test_no_prev_id_or_no_last_id_delivers_now() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub)
    assert hub.publish(item("7", "6"), 0.0) == 1  # no last id known yet
    assert hub.publish(item("9"), 0.0) == 1  # no prev-id
    assert hub.publish(item("10", "9"), 0.0) == 1  # matches
    assert sub.got == ["7", "9", "10"]


def test_item_without_id_clears_last_id() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub)
    hub.publish(item("1"), 0.0)
    hub.publish(item(None), 0.0)
    assert hub.last_id("c") is None
    assert hub.publish(item("8", "7"), 0.0) == 1


def test_unsequenced_without_subscription() -> None:
    hub = Hub()
    hub.publish(item("1"), 0.0)
    assert hub.last_id("c") is None
    sub = FakeSubscriber()
    hub.subscribe("c", sub, 0.0)
    assert hub.publish(item("3", "2"), 0.0) == 1  # no last id: delivered


def test_no_seq_bypasses_ordering_and_leaves_last_id() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub)
    hub.publish(item("1"), 0.0)
    assert hub.publish(item("9", "7", no_seq=True), 0.0) == 1
    assert hub.publish(item(None, no_seq=True), 0.0) == 1
    assert hub.last_id("c") == "1"
    assert hub.publish(item("2", "1"), 0.0) == 1
    assert sub.got == ["1", "9", None, "2"]


def test_one_parked_item_per_prev_id() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub)
    hub.publish(item("1"), 0.0)
    assert hub.publish(item("3", "2"), 0.0) == 0
    assert hub.publish(item("3b", "2"), 0.0) == 0  # dropped
    assert hub.stats.parked == 1
    assert hub.stats.parked_dropped == 1
    hub.publish(item("2", "1"), 0.0)
    hub.tick(100.0)
    assert sub.got == ["1", "2", "3"]


def test_parked_limit_per_channel() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub, max_parked_per_channel=3)
    hub.publish(item("0"), 0.0)
    for n in range(5):
        hub.publish(item(f"x{n}", f"p{n}"), 0.0)
    assert hub.stats.parked == 3
    assert hub.stats.parked_dropped == 2
    hub.tick(10.0)
    assert sub.got == ["0", "x0", "x1", "x2"]  # released in the order parked


def test_parked_limit_is_per_channel() -> None:
    hub = Hub(max_parked_per_channel=1)
    for ch in ("a", "b"):
        hub.subscribe(ch, FakeSubscriber(), 0.0)
        hub.publish(item("0", channel=ch), 0.0)
        hub.publish(item("2", "1", channel=ch), 0.0)
    assert hub.stats.parked == 2


def test_chain_release_in_order() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub)
    hub.publish(item("1"), 0.0)
    hub.publish(item("4", "3"), 0.0)
    hub.publish(item("3", "2"), 0.0)
    hub.publish(item("6", "5"), 0.0)  # not part of the chain
    assert hub.publish(item("2", "1"), 0.0) == 3
    assert sub.got == ["1", "2", "3", "4"]
    assert hub.last_id("c") == "4"
    hub.tick(10.0)
    assert sub.got == ["1", "2", "3", "4", "6"]
    assert hub.stats.parked_released_late == 1


def test_late_release_releases_its_chain() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub, message_wait=5.0)
    hub.publish(item("1"), 0.0)
    hub.publish(item("3", "2"), 0.0)
    hub.publish(item("4", "3"), 3.0)
    hub.tick(5.0)  # 3 is due; 4 follows it at once
    assert sub.got == ["1", "3", "4"]
    hub.tick(10.0)
    assert sub.got == ["1", "3", "4"]
    assert hub.stats.parked_released_late == 1


def test_parked_item_goes_to_subscribers_present_at_release() -> None:
    a, b = FakeSubscriber(), FakeSubscriber()
    hub = hub_with(a)
    hub.publish(item("1"), 0.0)
    hub.publish(item("3", "2"), 0.0)
    hub.subscribe("c", b, 1.0)
    hub.tick(5.0)
    assert (a.got, b.got) == (["1", "3"], ["3"])


def test_clear_and_forget_last_ids() -> None:
    sub = FakeSubscriber()
    hub = Hub()
    hub.subscribe("a", sub, 0.0)
    hub.subscribe("b", sub, 0.0)
    hub.publish(item("1", channel="a"), 0.0)
    hub.publish(item("1", channel="b"), 0.0)
    hub.forget_last_id("a")
    assert hub.last_id("a") is None
    assert hub.last_id("b") == "1"
    assert hub.publish(item("9", "8", channel="a"), 0.0) == 1
    hub.clear_last_ids()
    assert hub.last_id("a") is None and hub.last_id("b") is None
    assert hub.publish(item("9", "8", channel="b"), 0.0) == 1
    hub.forget_last_id("never")


def test_last_ids_bounded_lru() -> None:
    hub = Hub(max_last_ids=2)
    for ch in "abc":
        hub.subscribe(ch, FakeSubscriber(), 0.0)
    hub.publish(item("1", channel="a"), 0.0)
    hub.publish(item("1", channel="b"), 0.0)
    hub.publish(item("2", channel="a"), 0.0)  # a is now the most recent
    hub.publish(item("1", channel="c"), 0.0)  # evicts b
    assert hub.last_id("a") == "2"
    assert hub.last_id("b") is None
    assert hub.last_id("c") == "1"


# ---- subscription lifetime -------------------------------------------------------------


def test_unsubscribe_without_linger_drops_channel_state() -> None:
    sub = FakeSubscriber()
    hub = hub_with(sub)
    hub.publish(item("1"), 0.0)
    hub.publish(item("3", "2"), 0.0)  # parked
    hub.unsubscribe("c", sub, 1.0)
    assert hub.channels() == 0
    assert hub.last_id("c") is None
    again = FakeSubscriber()
    hub.subscribe("c", again, 2.0)
    hub.tick(100.0)
    assert again.got == []  # the parked item was discarded


def test_linger_keeps_channel_subscribed_then_expires() -> None:
    hub = Hub(subscription_linger=60.0)
    events: list[str] = []
    hub.on_unsubscribed.append(events.append)
    poll = FakeSubscriber(RESPONSE)
    hub.subscribe("c", poll, 0.0)
    hub.publish(item("1", formats=(RESPONSE,)), 0.0)
    hub.unsubscribe("c", poll, 10.0, linger=True)

    assert hub.channels() == 1
    assert hub.is_subscribed("c")
    assert hub.subscriber_count("c") == 0
    assert hub.last_id("c") == "1"
    # Still sequenced while lingering: a gap parks.
    assert hub.publish(item("3", "2", formats=(RESPONSE,)), 11.0) == 0
    assert hub.stats.parked == 1
    # A re-poll is not a first subscription.
    again = FakeSubscriber(RESPONSE)
    assert hub.subscribe("c", again, 12.0) is False
    hub.unsubscribe("c", again, 13.0, linger=True)

    hub.tick(72.9)
    assert events == []
    hub.tick(73.0)
    assert events == ["c"]
    assert hub.channels() == 0
    assert hub.last_id("c") is None
    hub.tick(200.0)
    assert events == ["c"]
    assert hub.subscribe("c", FakeSubscriber(), 201.0) is True


def test_stale_linger_deadline_is_ignored() -> None:
    hub = Hub(subscription_linger=60.0)
    a = FakeSubscriber(RESPONSE)
    hub.subscribe("c", a, 0.0)
    hub.unsubscribe("c", a, 0.0, linger=True)  # until 60
    hub.subscribe("c", a, 10.0)
    hub.unsubscribe("c", a, 20.0, linger=True)  # until 80
    hub.tick(61.0)
    assert hub.is_subscribed("c")
    hub.tick(80.0)
    assert not hub.is_subscribed("c")


def test_linger_cancelled_by_resubscribe_then_immediate_unsubscribe() -> None:
    hub = Hub(subscription_linger=60.0)
    events: list[str] = []
    hub.on_subscribed.append(lambda ch: events.append("sub"))
    hub.on_unsubscribed.append(lambda ch: events.append("unsub"))
    poll, stream = FakeSubscriber(RESPONSE), FakeSubscriber(STREAM)
    hub.subscribe("c", poll, 0.0)
    hub.unsubscribe("c", poll, 1.0, linger=True)
    hub.subscribe("c", stream, 2.0)
    hub.unsubscribe("c", stream, 3.0)  # a stream ends at once
    assert events == ["sub", "unsub"]
    hub.tick(100.0)
    assert events == ["sub", "unsub"]


def test_linger_zero_ends_at_once() -> None:
    hub = Hub(subscription_linger=0.0)
    poll = FakeSubscriber(RESPONSE)
    hub.subscribe("c", poll, 0.0)
    hub.unsubscribe("c", poll, 1.0, linger=True)
    assert hub.channels() == 0


def test_tick_with_nothing_due() -> None:
    hub = hub_with(FakeSubscriber())
    hub.publish(item("1"), 0.0)
    hub.tick(1.0)
    hub.tick(1.0)
    assert hub.last_id("c") == "1"
    assert hub.channels() == 1
