"""The cluster example (examples/cluster) as users run it: one publisher, three p8
instances with two workers each, clients on every instance; every client gets every
message once, in order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cluster" / "cluster.py"


def test_cluster_example_every_client_gets_every_message_once() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE), "--messages", "4"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    clients = [line for line in lines if line.lstrip().startswith("client ")]
    assert len(clients) == 12
    assert all(line.endswith("message 1, message 2, message 3, message 4  [ok]")
               for line in clients), done.stdout
    assert lines[-1] == ("12 clients on 3 nodes x 2 workers: every client got every message "
                         "once, in order")
