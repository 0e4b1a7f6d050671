"""Imported by the fork server of a crawl's process pool: its workers start with everything loaded.

A worker forked from a warm server skips ~1 s of imports (NumPy, h5py, boost-histogram) and of
building pint's unit registry, paid once by the server instead of once per worker.
"""

import boost_histogram  # noqa: F401
import h5py  # noqa: F401

from . import _work  # noqa: F401
from ._readers import _pandas, _simple_kernel
from ._units import _registry
from ._work import _binner

_registry()
_pandas()  # the CSV fast path, when pandas is installed

_simple_kernel()  # numba's compiled CSV parse kernel (from its cache), when numba is installed
_binner()  # and the compiled histogram fill
