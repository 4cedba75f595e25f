"""p8 plugin: HTTP streaming (Grip-Hold: stream, format http-stream)."""
