#!/usr/bin/env bash
# Start three p8 nodes that share publishes through one XPUB publisher.
# Usage (from the repository root, after `make setup`): examples/cluster/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "$here/../.." && pwd)/.venv/bin
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
for i in 1 2 3; do
  "$bin/p8" run --config "$here/node$i.toml" --log-level warning &
  pids+=($!)
done
echo "nodes on :8001 :8002 :8003 - try: curl -N localhost:8001/stream?channel=news"
"$bin/python" "$here/publisher.py"
