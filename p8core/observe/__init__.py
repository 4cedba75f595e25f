"""Observing a running p8: telemetry (connections, traffic, latencies), Prometheus
metrics, and the health endpoints."""
