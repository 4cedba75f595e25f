"""p8 plugin: WebSocket clients and WebSocket-over-HTTP (format ws-message)."""
