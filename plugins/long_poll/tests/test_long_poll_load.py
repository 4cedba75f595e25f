"""A thousand clients long-poll one channel in a loop through twenty publishes, with a
backend that uses ids and prev-ids as gripcontrol users do: none misses a message."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import structlog

from p8core.testing import Reply, SeenRequest, publish, run_origin, run_p8

pytestmark = pytest.mark.anyio

CLIENTS = 1000
MESSAGES = 20
CHANNEL = "lp"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    # asyncio's debug mode (on for the other tests) costs more than this test can afford.
    return ("asyncio", {"debug": False})


class Feed:
    """``GET /feed?last=k``: the messages after k at once if there are any, else a hold on
    the channel with ``prev-id=k``. A message is stored before it is published."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def __call__(self, req: SeenRequest) -> Reply:
        last = int(req.target.partition(b"last=")[2])
        if last < len(self.messages):
            return Reply(200, [("Content-Type", "text/plain")], b"".join(self.messages[last:]))
        return Reply(200, [("Grip-Hold", "response"), ("Grip-Timeout", "5"),
                           ("Grip-Channel", f"{CHANNEL}; prev-id={last}")], b"")

    def add(self) -> dict[str, Any]:
        n = len(self.messages) + 1
        self.messages.append(b"%d\n" % n)
        return {"channel": CHANNEL, "id": str(n), "prev-id": str(n - 1),
                "formats": {"http-response": {"body": f"{n}\n"}}}


async def test_a_thousand_clients_polling_in_a_loop_miss_nothing(connect: Any) -> None:
    feed = Feed()
    # 0.2 turns the backend's 5 s timeout into 1 s: a poll that starts just after a
    # publish it cannot see, with nothing after it, waits that long at most.
    config = {"plugins": {"enabled": ["long_poll"], "long_poll": {"timeout_scale": 0.2}}}
    received: dict[int, list[int]] = {}

    async def client(i: int, port: int) -> None:
        got = received[i] = []
        async with connect(port) as conn:
            while len(got) < MESSAGES:
                answer = await conn.request(f"/feed?last={len(got)}")
                assert answer.status == 200
                for line in answer.body.split():
                    assert int(line) == len(got) + 1, "in order, none twice, none skipped"
                    got.append(int(line))

    started = anyio.current_time()
    with structlog.testing.capture_logs() as logs:
        async with run_origin(feed) as origin:
            config["routes"] = [{"target": origin.target}]
            async with run_p8(config) as p8, anyio.create_task_group() as tg:
                hub = p8.app.hub
                with anyio.fail_after(60):  # ~10 s on an idle machine
                    # One client subscribes the channel first and is asked again by the
                    # first-subscription update (grip.md §7.3), over before the others
                    # arrive: it refreshes every hold on the channel, ten per second.
                    tg.start_soon(client, 0, p8.bound.port)
                    while len(origin.requests) < 2:
                        await anyio.sleep(0.01)
                    for i in range(1, CLIENTS):
                        tg.start_soon(client, i, p8.bound.port)
                    while hub.subscriber_count(CHANNEL) < CLIENTS:
                        await anyio.sleep(0.01)
                    subscribed = anyio.current_time()
                    for n in range(MESSAGES):
                        assert (await publish(p8, feed.add())).status_code == 200
                        # Every other one right away, so that clients are between polls.
                        await anyio.sleep(0.1 if n % 2 else 0)
                    while sum(len(got) == MESSAGES for got in received.values()) < CLIENTS:
                        await anyio.sleep(0.05)
                    done = anyio.current_time()
    assert len(received) == CLIENTS
    assert all(got == list(range(1, MESSAGES + 1)) for got in received.values())
    assert not [e for e in logs if e["log_level"] in ("warning", "error", "exception")]
    retries = sum(r.header(b"grip-last") is not None for r in origin.requests)
    print(f"{CLIENTS} clients, {MESSAGES} messages: subscribed after "
          f"{subscribed - started:.1f} s, all received {done - subscribed:.1f} s later; "
          f"{len(origin.requests)} backend requests, {retries} of them retries")
