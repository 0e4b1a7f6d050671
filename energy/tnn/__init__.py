"""energy.tnn: Flax (nnx) energy surrogates for unseen regions and more dimensions than a grid.

Two ways to get one, both ensembles of K smooth networks trained in one vmapped optax program:

- `fit(m, key)`: regression of an EnergyMap's energy and noise pyramid;
- `fit_samples(samples, key)`: a noise-conditional energy learnt from raw samples by denoising
  score matching.

A `Surrogate` is used like a map: `s(x)`, `s.energy(x)` ((..., d) -> (...,), under jit, vmap
and grad), `s.energy_at(x, sigma)` and `s.noise_levels` (annealing), `s.scale`,
`s.uncertainty(x)` (the ensemble's spread), `s.save(directory)` and `load(directory)`.

Example:
    >>> import jax, numpy as np, energy
    >>> x = np.random.default_rng(0).normal(size=(5000, 3))
    >>> s = energy.tnn.fit_samples(x, jax.random.key(0), steps=400, progress=False)
    >>> s(np.zeros(3)).shape
    ()
"""

from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import load as load
from ._dsm import fit_samples as fit_samples
from ._dsm import geometric_levels as geometric_levels
from ._fit import UNIFORM_FRACTION as UNIFORM_FRACTION
from ._fit import fit as fit
from ._model import EnergyNet as EnergyNet
from ._model import NetConfig as NetConfig
from ._surrogate import Surrogate as Surrogate

__all__ = [
    "UNIFORM_FRACTION",
    "CheckpointError",
    "EnergyNet",
    "NetConfig",
    "Surrogate",
    "fit",
    "fit_samples",
    "geometric_levels",
    "load",
]
