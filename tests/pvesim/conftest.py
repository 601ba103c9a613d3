"""Let `pytest tests/pvesim` import the simulator package as `pvesim` from the repository root."""

import os
import sys

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
