"""p8 plugin: Publishing over ZeroMQ PULL and SUB."""
