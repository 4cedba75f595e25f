"""Background tasks of the running server: request cycles, backend requests of held
exchanges and WebSocket sessions, next-link fetches.

They are plain asyncio tasks rather than children of an anyio task group: one is started
per WebSocket message or long-poll cycle, and an asyncio task starts in a fifth of the
time. The set keeps them referenced, logs a failure instead of letting it stop the server,
and cancels what is left at shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(component="server")


class BackgroundTasks:
    """Tasks spawned while serving; each failure is logged, the rest cancelled by
    :meth:`aclose`."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, func: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``func(*args)`` in a new task, now."""
        task = asyncio.get_running_loop().create_task(_guarded(func, args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel every task still running and wait until they have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _guarded(func: Callable[..., Awaitable[object]], args: tuple[object, ...]) -> None:
    try:
        await func(*args)
    except Exception:
        log.exception("task_failed", task=getattr(func, "__qualname__", repr(func)))
