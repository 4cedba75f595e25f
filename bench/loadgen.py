"""A load-generator process: ``python -m bench.loadgen SCENARIO PARAMS_JSON``.

Runs ``bench.scenarios.<SCENARIO>.generate(params, control)`` on uvloop (when installed).
It talks to the harness in JSON lines: events on stdout, commands on stdin. Nothing else
may write to stdout; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import resource
import sys
import traceback
from typing import Any


class Control:
    """The load generator's side of the line protocol with the harness."""

    def event(self, name: str, **data: Any) -> None:
        sys.stdout.write(json.dumps({"event": name, **data}) + "\n")
        sys.stdout.flush()

    async def command(self) -> dict[str, Any]:
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        return dict(json.loads(line)) if line.strip() else {"cmd": "exit"}

    async def wait(self, name: str) -> dict[str, Any]:
        msg = await self.command()
        if msg["cmd"] != name:
            raise RuntimeError(f"expected command {name!r}, got {msg!r}")
        return msg


def main() -> int:
    scenario, params = sys.argv[1], json.loads(sys.argv[2])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gc.disable()  # no collector pauses in the generator; what it allocates is bounded
    module = importlib.import_module(f"bench.scenarios.{scenario}")
    control = Control()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(module.generate(params, control))
    except BaseException as e:
        traceback.print_exc()
        control.event("error", error=f"{type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
