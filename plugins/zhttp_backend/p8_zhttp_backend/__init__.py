"""p8 plugin: ZeroMQ backends over ZHTTP (zhttp+tcp://, zhttpreq+tcp:// targets)."""
