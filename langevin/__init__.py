"""langevin: annealed Langevin chains on energy landscapes (ULA / MALA, schedules, sweeps).

Samples ``p(x) ∝ exp(-E(x) / T)`` for any target ``E``: an `energy.EnergyMap`, a surrogate, or a
jax function ``(d,) -> scalar``; thousands of chains in one compiled program, sharded across
devices.

Example:
    >>> import jax, jax.numpy as jnp, langevin
    >>> res = langevin.sample(lambda x: 0.5 * x @ x, jax.random.key(0), n_chains=128,
    ...                       init=jnp.zeros(2), progress=False)
    >>> res.positions.shape
    (128, 2)
"""

from ._diagnostics import ess as ess
from ._diagnostics import rhat as rhat
from ._diagnostics_nested import nested_rhat as nested_rhat
from ._diagnostics_nested import nested_rhat_threshold as nested_rhat_threshold
from ._distributed import initialize as initialize_distributed
from ._kernels import Constraints as Constraints
from ._kernels import LangevinInfo as LangevinInfo
from ._kernels import LangevinState as LangevinState
from ._kernels import SamplingAlgorithm as SamplingAlgorithm
from ._kernels import constraints as constraints
from ._kernels import init as init
from ._kernels import mala as mala
from ._kernels import mala_step as mala_step
from ._kernels import reflect as reflect
from ._kernels import ula as ula
from ._kernels import ula_step as ula_step
from ._sample import SampleResult as SampleResult
from ._sample import sample as sample
from ._schedules import NoiseAnnealing as NoiseAnnealing
from ._schedules import TemperatureSchedule as TemperatureSchedule
from ._schedules import constant as constant
from ._schedules import cosine as cosine
from ._schedules import geometric as geometric
from ._schedules import linear as linear
from ._sweep import SweepResult as SweepResult
from ._sweep import sweep as sweep

__all__ = [
    "Constraints",
    "LangevinInfo",
    "LangevinState",
    "NoiseAnnealing",
    "SampleResult",
    "SamplingAlgorithm",
    "SweepResult",
    "TemperatureSchedule",
    "constant",
    "constraints",
    "cosine",
    "ess",
    "geometric",
    "init",
    "initialize_distributed",
    "linear",
    "mala",
    "mala_step",
    "nested_rhat",
    "nested_rhat_threshold",
    "reflect",
    "rhat",
    "sample",
    "sweep",
    "ula",
    "ula_step",
]
