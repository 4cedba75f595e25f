"""message_rate / message_hwm without sockets: the budget, its debt, the bounded queue."""

from __future__ import annotations

from p8core.pubsub.items import PublishItem
from p8core.pubsub.rate import DeliveryRate


def item(n: int) -> PublishItem:
    return PublishItem(channel="c", formats={"http-stream": b"%d" % n}, id=str(n))


def test_a_big_fan_out_goes_whole_then_the_budget_is_in_debt() -> None:
    rate = DeliveryRate(rate=100, hwm=1000)  # batches of 2.5 deliveries every 25 ms
    assert rate.offer(item(0), 300, now=0.0), "an item is never split between subscribers"
    assert not rate.offer(item(1), 1, now=0.0)
    assert rate.release(now=1.0) == [], "300 deliveries take 3 s at 100/s"
    assert rate.release(now=3.1) == [item(1)]


def test_waiting_items_leave_in_order_at_the_rate() -> None:
    rate = DeliveryRate(rate=40, hwm=10)  # one delivery per 25 ms batch
    assert rate.offer(item(0), 1, now=0.0)
    for n in range(1, 4):
        assert not rate.offer(item(n), 1, now=0.0)
    assert rate.pending == 3
    assert rate.release(now=0.025) == [item(1)]
    assert rate.release(now=0.025) == []
    assert rate.release(now=10.0) == [item(2)], "an idle budget refills one batch only"
    assert rate.release(now=10.025) == [item(3)]
    assert rate.pending == 0


def test_message_hwm_bounds_what_waits_but_not_a_publish_to_an_empty_queue() -> None:
    rate = DeliveryRate(rate=10, hwm=5)
    assert rate.admits(50), "nothing waits: a publish of any weight is taken"
    assert rate.offer(item(0), 50, now=0.0)
    assert rate.admits(5)
    assert not rate.offer(item(1), 5, now=0.0)
    assert not rate.admits(1)
    assert rate.release(now=5.1) == [item(1)]
    assert rate.admits(5)
