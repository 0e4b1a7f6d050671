"""Imported by the fork server of a crawl's process pool: its workers start with everything loaded.

A worker forked from a warm server skips the imports every file needs (NumPy, h5py,
boost-histogram, the readers) and the loading of numba's compiled kernels (the histogram fill,
the CSV parse), paid once by the server instead of once per worker. The fork server is started
at the beginning of a crawl, so this runs while the calling process checks the arguments.

Left out because a crawl may not need them, each loaded by a worker at its first use: pint's
unit registry (only when a file states another unit than the one asked) and pandas (only for
a CSV block the compiled parse does not take).
"""

import boost_histogram  # noqa: F401
import h5py  # noqa: F401

from . import _work  # noqa: F401
from ._readers import _simple_kernel
from ._work import _binner

_simple_kernel()  # numba's compiled CSV parse kernel (from its cache), when numba is installed
_binner()  # and the compiled histogram fill
