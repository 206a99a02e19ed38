"""Fixtures of the fault suite (the helpers live in faultkit.py)."""

from faultkit import env  # noqa: F401  (the fixture)
