"""Fixtures of the ingest tests (file-writing helpers live in ingest_helpers.py)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fixed-seed generator."""
    return np.random.default_rng(20240611)
