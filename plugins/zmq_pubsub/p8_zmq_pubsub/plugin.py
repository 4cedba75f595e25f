"""Hook wiring of the zmq_pubsub plugin: publishing over ZeroMQ PULL and SUB."""

from __future__ import annotations
