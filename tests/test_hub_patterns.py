"""Wildcard channels in the hub: patterns beside channels, matched by prefix."""

from __future__ import annotations

from p8core.pubsub.hub import Hub
from p8core.pubsub.patterns import PrefixTrie, pattern_problem
from tests.test_hub import RESPONSE, STREAM, FakeSubscriber, item

EMPTY = {"channels": 0, "patterns": 0, "pattern_nodes": 0, "subscribers": 0, "lingering": 0,
         "ids_cached": 0, "last_ids": 0, "parked": 0, "deadlines": 0}


def channels_got(sub: FakeSubscriber) -> list[str]:
    return [i.channel for i in sub.items]


def test_trie_matches_prefixes_only() -> None:
    trie: PrefixTrie[str] = PrefixTrie()
    for prefix in ("news.", "news.b.", "", "sports"):
        trie.set(prefix, prefix)
    assert list(trie.matches("news.b.c")) == ["", "news.", "news.b."]
    assert list(trie.matches("newsroom")) == [""]
    assert list(trie.matches("news")) == [""]
    assert list(trie.matches("sportsx")) == ["", "sports"]
    assert len(trie) == 4


def test_trie_remove_prunes_every_node() -> None:
    trie: PrefixTrie[int] = PrefixTrie()
    trie.set("news.", 1)
    trie.set("news.b.", 2)
    trie.remove("news.")
    assert list(trie.matches("news.b.x")) == [2]
    trie.remove("news.b.")
    trie.remove("unknown")
    assert (len(trie), trie.nodes) == (0, 1)


def test_only_a_trailing_star_is_a_pattern() -> None:
    assert pattern_problem("news.*") is None and pattern_problem("*") is None
    assert pattern_problem("news") is None
    assert pattern_problem("news.*.x") is not None and pattern_problem("**") is not None


def test_pattern_gets_every_matching_channel_and_nothing_else() -> None:
    hub, sub = Hub(), FakeSubscriber()
    assert hub.subscribe("news.*", sub, 0, wildcard=True)
    for channel in ("news.a", "news.b.c", "sports.x", "news", "newsroom", "news.*"):
        hub.publish(item(channel=channel), 0)
    assert channels_got(sub) == ["news.a", "news.b.c", "news.*"]


def test_without_wildcard_a_star_is_literal() -> None:
    hub, sub = Hub(), FakeSubscriber()
    hub.subscribe("news.*", sub, 0)
    hub.publish(item(channel="news.a"), 0)
    hub.publish(item(channel="news.*"), 0)
    assert channels_got(sub) == ["news.*"]
    assert hub.sizes()["patterns"] == 0


def test_bare_star_matches_every_channel() -> None:
    hub, sub = Hub(), FakeSubscriber()
    hub.subscribe("*", sub, 0, wildcard=True)
    hub.publish(item(channel="a"), 0)
    hub.publish(item(channel="b.c"), 0)
    assert channels_got(sub) == ["a", "b.c"]


def test_several_matching_subscriptions_deliver_once() -> None:
    hub, sub, other = Hub(), FakeSubscriber(), FakeSubscriber()
    delivered: list[tuple[str, str, int]] = []
    hub.on_delivered.append(lambda i, fmt, n: delivered.append((i.channel, fmt, n)))
    for name in ("news.a", "news.*", "news.a*"):
        hub.subscribe(name, sub, 0, wildcard=True)
    hub.subscribe("news.*", other, 0, wildcard=True)
    news_a = item(channel="news.a")
    assert hub.receivers(news_a) == 2
    assert hub.publish(news_a, 0) == 2
    assert channels_got(sub) == channels_got(other) == ["news.a"]
    assert delivered == [("news.a", STREAM, 2)]
    assert hub.stats.delivered_by_format == {STREAM: 2}


def test_pattern_respects_formats() -> None:
    hub, stream, response = Hub(), FakeSubscriber(STREAM), FakeSubscriber(RESPONSE)
    hub.subscribe("n.*", stream, 0, wildcard=True)
    hub.subscribe("n.*", response, 0, wildcard=True)
    assert hub.publish(item(channel="n.x", formats=(RESPONSE,)), 0) == 1
    assert (stream.items, channels_got(response)) == ([], ["n.x"])
    assert hub.subscriber_counts("n.*") == {STREAM: 1, RESPONSE: 1}
    assert hub.subscriptions_by_format() == {STREAM: 1, RESPONSE: 1}


def test_pattern_is_announced_by_its_name_once() -> None:
    hub, a, b = Hub(), FakeSubscriber(), FakeSubscriber()
    events: list[str] = []
    hub.on_subscribed.append(lambda c: events.append(f"+{c}"))
    hub.on_unsubscribed.append(lambda c: events.append(f"-{c}"))
    hub.on_changed.append(lambda c: events.append(f"~{c}"))
    assert hub.subscribe("news.*", a, 0, wildcard=True)
    assert not hub.subscribe("news.*", b, 0, wildcard=True)
    assert hub.subscriber_count("news.*") == 2 and hub.subscribers("news.*") == [a, b]
    assert hub.is_subscribed("news.*") and not hub.is_subscribed("news.a")
    # The literal channel of the same name shares the announcement.
    assert not hub.subscribe("news.*", a, 0)
    hub.unsubscribe("news.*", a, 0, wildcard=True)
    hub.unsubscribe("news.*", b, 0, wildcard=True)
    hub.unsubscribe("news.*", a, 0)
    assert events == ["~news.*", "+news.*", "~news.*", "~news.*", "~news.*", "~news.*",
                      "~news.*", "-news.*"]
    assert not hub.is_subscribed("news.*")


def test_unsubscribing_cleans_up_fully() -> None:
    hub, sub = Hub(), FakeSubscriber()
    for name in ("news.*", "news.b.*", "*", "sports.*"):
        hub.subscribe(name, sub, 0, wildcard=True)
    hub.publish(item(channel="news.b.c"), 0)
    assert hub.sizes()["patterns"] == 4 and hub.channels() == 4
    for name in ("news.*", "news.b.*", "*", "sports.*"):
        hub.unsubscribe(name, sub, 0, wildcard=True, linger=True)
    assert hub.sizes() == EMPTY and hub.channels() == 0
    assert not hub.has_pattern_for("news.b.c")
    hub.publish(item(channel="news.b.c"), 0)
    assert channels_got(sub) == ["news.b.c"]


def test_unsubscribing_during_a_pattern_delivery() -> None:
    hub = Hub()
    first = FakeSubscriber(on_deliver=lambda s, i: hub.unsubscribe("n.*", second, 0,
                                                                   wildcard=True))
    second = FakeSubscriber()
    hub.subscribe("n.*", first, 0, wildcard=True)
    hub.subscribe("n.*", second, 0, wildcard=True)
    assert hub.publish(item(channel="n.1"), 0) == 1
    assert (channels_got(first), second.items) == (["n.1"], [])


def test_ordering_stays_per_channel_with_patterns() -> None:
    hub, exact, pattern = Hub(message_wait=5), FakeSubscriber(), FakeSubscriber()
    hub.subscribe("n.a", exact, 0)
    hub.subscribe("n.*", pattern, 0, wildcard=True)
    hub.publish(item("1", channel="n.a"), 0)
    hub.publish(item("3", "2", channel="n.a"), 0)  # parked: waits for 2
    hub.publish(item("x", channel="n.b"), 0)
    hub.publish(item("2", "1", channel="n.a"), 0)
    assert exact.got == ["1", "2", "3"]
    assert pattern.got == ["1", "x", "2", "3"]
