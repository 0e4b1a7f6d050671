"""Annealing schedules: temperature schedules as callables of the step, and noise-level annealing.

A schedule describes the *annealing phase* that runs before the chains sample the target at its
final temperature. It is a small frozen object (hashable, so it never causes a recompilation) that
`langevin.sample` turns into per-step tables ``(sigma_t, h_t, T_t)``:

- a temperature schedule (`geometric`, `linear`, `cosine`) gives ``T_t`` for ``t < n_steps`` on
  the target itself, with the sampling step size;
- `NoiseAnnealing` walks down a target's noise levels ``sigma_1 > ... > sigma_L`` (relative units)
  with ``steps_per_level`` steps of size ``h_i = eps * sigma_i^2 / sigma_L^2`` each (Song & Ermon
  2019, Algorithm 1), at the final temperature.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "NoiseAnnealing",
    "TemperatureSchedule",
    "constant",
    "cosine",
    "geometric",
    "linear",
]

# Song & Ermon (2019) use alpha_L = 2e-5 at sigma_L = 0.01, i.e. alpha_L = 0.2 sigma_L^2 in their
# x + alpha/2 * score + sqrt(alpha) z convention, which is h_L = alpha_L / 2 = 0.1 sigma_L^2 here:
# each step moves a chain by sqrt(2 h) ≈ 0.45 sigma. The paper's T = 100 steps per level left the
# Song & Ermon toy's weights 0.01 low here (chains not quite re-equilibrated between levels);
# T = 200 (≈ 6 sigma of diffusion per level) removes that bias within Monte Carlo error.
DEFAULT_EPS_FACTOR = 0.1
DEFAULT_STEPS_PER_LEVEL = 200


@dataclasses.dataclass(frozen=True)
class TemperatureSchedule:
    """A temperature as a function of the step: ``T(t)`` for ``0 <= t < n_steps``.

    Rules (``s = t / (n_steps - 1)`` in ``[0, 1]``):
    ``geometric``: ``T = start * (end / start)^s``; ``linear``: ``T = start + (end - start) s``;
    ``cosine``: ``T = end + (start - end) (1 + cos(pi s)) / 2``; ``constant``: ``T = start``.

    Args:
        kind: one of ``"geometric"``, ``"linear"``, ``"cosine"``, ``"constant"``.
        start: temperature at the first step.
        end: temperature at the last step.
        n_steps: length of the annealing phase.

    Example:
        >>> sch = geometric(10.0, 1.0, 100)
        >>> float(sch(0)), round(float(sch(99)), 6)
        (10.0, 1.0)
    """

    kind: str
    start: float
    end: float
    n_steps: int

    def __post_init__(self):
        if self.kind not in ("geometric", "linear", "cosine", "constant"):
            raise ValueError(f"unknown temperature schedule kind {self.kind!r}")
        for name in ("start", "end"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"temperature schedule {name} must be finite and >= 0, got {v}")
        if self.kind == "geometric" and (self.start <= 0 or self.end <= 0):
            raise ValueError(
                f"geometric temperatures must be > 0 (got start={self.start}, end={self.end}); "
                "use linear or cosine to cool to 0"
            )
        if int(self.n_steps) < 1:
            raise ValueError(f"n_steps of a schedule must be >= 1, got {self.n_steps}")

    def __call__(self, step: ArrayLike):
        """Temperature at ``step`` (clipped to the schedule's range); works on arrays and tracers."""
        s = jnp.clip(jnp.asarray(step, dtype=float) / max(self.n_steps - 1, 1), 0.0, 1.0)
        a, b = self.start, self.end
        if self.kind == "geometric":
            return a * (b / a) ** s
        if self.kind == "linear":
            return a + (b - a) * s
        if self.kind == "cosine":
            return b + (a - b) * 0.5 * (1.0 + jnp.cos(jnp.pi * s))
        return jnp.full_like(s, a)

    def table(self) -> np.ndarray:
        """The temperatures of every step, shape ``(n_steps,)`` (float64, on the host)."""
        return np.asarray(self(np.arange(self.n_steps)), dtype=np.float64)


def geometric(start: float, end: float, n_steps: int) -> TemperatureSchedule:
    """Geometric cooling ``T(t) = start * (end / start)^(t / (n_steps - 1))`` (both > 0).

    Example:
        >>> round(float(geometric(4.0, 1.0, 3)(1)), 6)
        2.0
    """
    return TemperatureSchedule("geometric", float(start), float(end), int(n_steps))


def linear(start: float, end: float, n_steps: int) -> TemperatureSchedule:
    """Linear cooling ``T(t) = start + (end - start) t / (n_steps - 1)``.

    Example:
        >>> float(linear(2.0, 0.0, 3)(1))
        1.0
    """
    return TemperatureSchedule("linear", float(start), float(end), int(n_steps))


def cosine(start: float, end: float, n_steps: int) -> TemperatureSchedule:
    """Cosine cooling ``T(t) = end + (start - end) (1 + cos(pi t / (n_steps - 1))) / 2``.

    Example:
        >>> float(cosine(2.0, 0.0, 3)(1))
        1.0
    """
    return TemperatureSchedule("cosine", float(start), float(end), int(n_steps))


def constant(value: float, n_steps: int) -> TemperatureSchedule:
    """A constant temperature for ``n_steps`` (a plain burn-in phase).

    Example:
        >>> float(constant(0.5, 10)(3))
        0.5
    """
    return TemperatureSchedule("constant", float(value), float(value), int(n_steps))


@dataclasses.dataclass(frozen=True)
class NoiseAnnealing:
    """Annealed Langevin over noise levels (Song & Ermon 2019, Algorithm 1).

    For level ``i`` (``sigma_1 > ... > sigma_L``, relative units) run ``steps_per_level`` steps on
    ``energy_at(x, sigma_i)`` with step ``h_i = eps * sigma_i^2 / sigma_L^2`` (relative units: the
    move is ``x - h M ∇E + sqrt(2 h T M) z`` with ``M = diag(scale^2)``).

    Args:
        levels: the noise levels; ``None`` takes the target's ``noise_levels``.
        eps: the step at the smallest level; ``None`` means ``0.1 * sigma_L^2`` (each step moves
            a chain by about ``0.45 sigma_i``, as in the paper).
        steps_per_level: ``T`` in the paper (default 200).

    Example:
        >>> sch = NoiseAnnealing(levels=(0.5, 0.1), steps_per_level=2)
        >>> sigma, h = sch.tables()
        >>> sigma.tolist(), [round(v, 6) for v in h.tolist()]
        ([0.5, 0.5, 0.1, 0.1], [0.025, 0.025, 0.001, 0.001])
    """

    levels: tuple[float, ...] | None = None
    eps: float | None = None
    steps_per_level: int = DEFAULT_STEPS_PER_LEVEL

    def __post_init__(self):
        if self.levels is not None:
            lv = tuple(float(s) for s in np.ravel(np.asarray(self.levels, dtype=np.float64)))
            object.__setattr__(self, "levels", lv)
            _check_levels(np.asarray(lv), "NoiseAnnealing levels")
        if self.eps is not None and not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"NoiseAnnealing eps must be finite and > 0, got {self.eps}")
        if int(self.steps_per_level) < 1:
            raise ValueError(f"steps_per_level must be >= 1, got {self.steps_per_level}")

    @property
    def n_steps(self) -> int:
        """Length of the annealing phase (needs ``levels``)."""
        if self.levels is None:
            raise ValueError("NoiseAnnealing without levels: its length comes from the target")
        return len(self.levels) * int(self.steps_per_level)

    def with_levels(self, levels) -> NoiseAnnealing:
        """This schedule with ``levels`` filled in (from the target) when it has none."""
        if self.levels is not None:
            return self
        return dataclasses.replace(self, levels=tuple(float(s) for s in np.ravel(levels)))

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-step ``(sigma_t, h_t)``, each of shape ``(L * steps_per_level,)``."""
        if self.levels is None:
            raise ValueError("NoiseAnnealing without levels: call with_levels(target levels)")
        lv = np.asarray(self.levels, dtype=np.float64)
        eps = self.eps if self.eps is not None else DEFAULT_EPS_FACTOR * lv[-1] ** 2
        h = eps * lv**2 / lv[-1] ** 2
        k = int(self.steps_per_level)
        return np.repeat(lv, k), np.repeat(h, k)


def _check_levels(levels: np.ndarray, what: str) -> None:
    """Noise levels must be a non-empty, finite, positive, strictly decreasing vector."""
    if levels.ndim != 1 or levels.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence, got shape {levels.shape}")
    if not np.all(np.isfinite(levels)) or np.any(levels <= 0):
        raise ValueError(f"{what} must be finite and > 0, got {levels.tolist()}")
    if np.any(np.diff(levels) >= 0):
        raise ValueError(f"{what} must be strictly decreasing, got {levels.tolist()}")
