"""The benchmark harness: p8 against Pushpin 1.36, core for core.

``python -m bench.run`` starts each server with an equivalent config on free loopback
ports, pins it to CPU 0, drives it from load generators pinned to CPU 1, and writes
``bench/RESULTS.md``. See ``bench/README.md``.
"""
