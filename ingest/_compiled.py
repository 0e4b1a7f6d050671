"""Optional compiled kernels: built once on first use, or False when numba is unavailable."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable


def optional_kernel(build: Callable[[], object]) -> Callable[[], object]:
    """Memoise ``build`` (which imports numba and compiles): its result, or False on failure.

    False means "take the pure NumPy / pandas / boost path": numba is not installed, or it could
    not compile here. Callers test the result for truth.
    """

    @functools.cache
    def get():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numba's own deprecation notices
                return build()
        except Exception:  # noqa: BLE001 - not installed, or no compiler: the exact paths
            return False

    get.__doc__ = f"The kernels of `{build.__name__}` (False without numba)."
    return get
