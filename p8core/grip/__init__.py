"""grip."""
