"""p8: a GRIP proxy."""
