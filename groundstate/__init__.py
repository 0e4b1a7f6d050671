"""groundstate: the command line and the workflow across ``energy``, ``langevin`` and ``ingest``.

This package is the thin face of the project: it imports the three packages, and none of them
imports it. Its Python API is the capsule: ``groundstate.onboard`` grounds a domain from a data
lake into a verified folder, ``groundstate.load`` loads one (every hash checked first).

Example:
    >>> import groundstate
    >>> c = groundstate.onboard("lake/", ["wind_speed:m/s", "power:kW"], profile="wind",
    ...                         alpha=0.01, output="wind.capsule")  # doctest: +SKIP
    >>> c = groundstate.load("wind.capsule")  # doctest: +SKIP
    >>> c.shield(states).allow  # doctest: +SKIP
"""

__version__ = "0.1.0"

from ._capsule import Capsule as Capsule  # noqa: E402
from ._capsule import CapsuleError as CapsuleError  # noqa: E402
from ._capsule import load as load  # noqa: E402
from ._capsule import pack as pack  # noqa: E402
from ._capsule import verify as verify  # noqa: E402
from ._onboard import onboard as onboard  # noqa: E402

__all__ = ["Capsule", "CapsuleError", "__version__", "load", "onboard", "pack", "verify"]
