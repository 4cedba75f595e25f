"""Shared pytest set-up: every async test runs on asyncio (pyzmq's async API needs it)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    return ("asyncio", {"debug": True})
