"""Fixtures of the unit tests (tests/conftest.py makes the collection importable)."""

import os

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
