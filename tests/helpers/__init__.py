"""Helpers shared by the tests (not collected: no file here is named like a test)."""
