"""The shared timer wheel: callbacks that cancel or re-arm timers due at the same time."""

from __future__ import annotations

import anyio
import pytest

from p8core.server.timers import TimerWheel

pytestmark = pytest.mark.anyio


async def test_a_callback_may_cancel_or_rearm_owners_due_in_the_same_slot() -> None:
    wheel = TimerWheel(resolution=0.05)
    fired: list[str] = []

    def first() -> None:
        fired.append("first")
        wheel.cancel("second")                       # due in this same slot
        wheel.arm("third", 0.05, lambda: fired.append("third again"))

    wheel.arm("first", 0.05, first)
    wheel.arm("second", 0.05, lambda: fired.append("second"))
    wheel.arm("third", 0.05, lambda: fired.append("third"))
    with anyio.fail_after(2):
        while "third again" not in fired:
            await anyio.sleep(0.01)
    assert fired == ["first", "third again"]
    assert len(wheel) == 0
    wheel.close()


async def test_a_callback_may_rearm_itself() -> None:
    wheel = TimerWheel(resolution=0.01)
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) < 3:
            wheel.arm("tick", 0, tick)

    wheel.arm("tick", 0, tick)
    with anyio.fail_after(2):
        while len(ticks) < 3:
            await anyio.sleep(0.01)
    await anyio.sleep(0.05)
    assert len(ticks) == 3 and len(wheel) == 0
    wheel.close()
