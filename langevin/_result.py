"""What `langevin.sample` returns: `SampleResult` (final states, flags, optional trace)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from . import _diagnostics

__all__ = ["SampleResult"]

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class SampleResult:
    """What `sample` returns (arrays are JAX arrays; chains on the first axis).

    Attributes:
        positions: final states, ``(n_chains, d)``.
        energies: the target's energy ``E`` at the final states, ``(n_chains,)``.
        total_energies: ``E + weight * objective`` (equal to ``energies`` without objective).
        objective: the objective at the final states, or None.
        acceptance: MALA's mean acceptance probability per chain over the sampling phase
            (None for ULA).
        diverged: chains that met a non-finite gradient, move or energy (their non-finite
            coordinates keep their last finite values; flagged, never silently NaN),
            ``(n_chains,)`` bool.
        step_size: the sampling step ``h`` (relative units when the target has ``scale``).
        trajectory: ``(n_steps // thin, n_chains, d)`` states every ``thin`` steps, or None
            (with ``trace=DIR``: a read-only memory map of ``DIR/trajectory.npy``).
        energy_trace: ``(n_steps // thin, n_chains)`` total energies, or None.
        n_steps, n_anneal, n_warmup: steps of the sampling, annealing and adaptation phases.
        method: ``"ula"`` or ``"mala"``; schedule: what annealing ran (a description).
        names: the target's axis names (None when it has none).
    """

    positions: Array
    energies: Array
    total_energies: Array
    objective: Array | None
    acceptance: Array | None
    diverged: Array
    step_size: Array
    trajectory: Array | None
    energy_trace: Array | None
    n_steps: int
    n_anneal: int
    n_warmup: int
    method: str
    schedule: str
    names: tuple[str, ...] | None = None

    @property
    def n_diverged(self) -> int:
        """How many chains were flagged as diverged."""
        return int(np.sum(np.asarray(self.diverged)))

    def _need_trace(self, what: str):
        if self.trajectory is None:
            raise ValueError(f"{what} needs a trajectory: call sample(..., thin=k)")
        if self.trajectory.shape[0] < 4:
            raise ValueError(
                f"{what} needs at least 4 recorded draws, got {self.trajectory.shape[0]}"
            )

    @property
    def rhat(self) -> np.ndarray:
        """Rank-normalised split R-hat per coordinate over the recorded trajectory, ``(d,)``."""
        self._need_trace("rhat")
        return _diagnostics.rhat(self.trajectory)

    @property
    def ess(self) -> np.ndarray:
        """Bulk effective sample size per coordinate over the recorded trajectory, ``(d,)``."""
        self._need_trace("ess")
        return _diagnostics.ess(self.trajectory)

    @property
    def energy_rhat(self) -> float:
        """Rank-normalised split R-hat of the energy trace."""
        self._need_trace("energy_rhat")
        return float(_diagnostics.rhat(self.energy_trace[:, :, None])[0])

    def to_xarray(self, names=None):
        """The recorded draws as an ``xarray.Dataset``: dims ``(chain, draw)``, one variable per
        coordinate (named by ``names``, else the target's names, else ``x0 ...``) and ``energy``
        (the total energy); ArviZ reads it (`langevin._xarray.to_xarray`; needs xarray)."""
        from . import _xarray

        self._need_trace("to_xarray")
        return _xarray.to_xarray(
            np.swapaxes(np.asarray(self.trajectory), 0, 1),
            names if names is not None else self.names,
            energies=np.swapaxes(np.asarray(self.energy_trace), 0, 1),
            attrs=self._attrs(),
        )

    def to_arviz(self, names=None):
        """The recorded draws in ArviZ's container (``posterior`` and ``sample_stats.energy``):
        an ``xarray.DataTree`` (ArviZ >= 1) or ``InferenceData`` (ArviZ 0.x only)."""
        from . import _xarray

        self._need_trace("to_arviz")
        return _xarray.to_arviz(
            np.swapaxes(np.asarray(self.trajectory), 0, 1),
            names if names is not None else self.names,
            energies=np.swapaxes(np.asarray(self.energy_trace), 0, 1),
            attrs=self._attrs(),
        )

    def _attrs(self) -> dict:
        thin = self.n_steps // self.trajectory.shape[0]
        return {"method": self.method, "schedule": self.schedule, "thin": int(thin)}
