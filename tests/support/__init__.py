"""Helpers shared by every tier of the tests (imported as ``tests.support.<module>``; no
test module imports from another test module)."""
