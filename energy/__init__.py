"""energy: energy maps ``E(x) = -log p(x)`` on grids, their noise pyramid, the shield, surrogates.

``P(x) = exp(-E(x)) / Z``: low energy is where a system has been (proven), high energy is a barrier.

Example:
    >>> import numpy as np, energy
    >>> x = np.random.default_rng(0).normal(size=(50_000, 2))
    >>> m = energy.EnergyMap.from_samples(x, bins=32, names=["a", "b"])
    >>> bool(m.energy(np.zeros(2)) < m.energy(np.full(2, 2.0)))
    True
"""

from ._grid import bin_edges as bin_edges
from ._io import MapFileError as MapFileError
from ._io import MapFileNotFoundError as MapFileNotFoundError
from ._map import EnergyMap as EnergyMap
from ._map import load as load
from ._map import upgrade as upgrade
from ._shield import Decision, Reason, Shield, ShieldLog, conformal_rank

__all__ = [
    "Decision",
    "EnergyMap",
    "MapFileError",
    "MapFileNotFoundError",
    "Reason",
    "Shield",
    "ShieldLog",
    "bin_edges",
    "conformal_rank",
    "load",
    "tnn",
    "upgrade",
]


def __getattr__(name: str):
    """``energy.tnn`` is imported on first use: ``import energy`` loads neither flax nor optax."""
    if name == "tnn":
        import importlib

        return importlib.import_module(".tnn", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"tnn"})
