"""The local runner behind ``./stack`` (see docs/stack.md)."""
