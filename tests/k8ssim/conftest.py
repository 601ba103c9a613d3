"""Let `pytest tests/k8ssim` import the stand-in as `k8ssim` (and `pvesim`) from the repository root."""

import os
import sys

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
