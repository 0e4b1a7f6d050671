"""What `langevin.sample` returns: `SampleResult` (final states, flags, optional trace)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from . import _diagnostics, _diagnostics_nested

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
        n_stuck: chains stuck at low acceptance (MALA: mean acceptance over the sampling phase
            below 0.1x the ensemble's; ULA: over the last warm-up window), or None where not
            measured (annealed runs). Not dropped: see docs/langevin.md for what to do.
        n_restarted: chains that warm-up restarted at a healthy chain's position (stragglers).
        n_superchains: K when ``init`` had shape ``(K, d)`` (chain i in superchain i // M), or
            None.
        preconditioner: the adapted factor ``L`` (``M = L L^T``; ``(d, d)`` or ``(d,)``), or None.
        wall_time: seconds the run took (compilation included), or None.
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
    n_stuck: int | None = None
    n_restarted: int = 0
    n_superchains: int | None = None
    preconditioner: Array | None = None
    wall_time: float | None = None

    def nested_rhat(self) -> np.ndarray:
        """Nested R-hat of the final states per coordinate (Margossian et al. 2022), ``(d,)``.

        Needs superchains (``init`` of shape ``(K, d)``): a converged ensemble stays below
        `nested_rhat_threshold` (probability 0.99; about ``1 + 1 / (2 M)``), one whose chains
        still remember their start exceeds it.
        """
        if self.n_superchains is None:
            raise ValueError(
                "nested_rhat needs chains started in superchains: pass init of shape (K, d), "
                "K over-dispersed points with K dividing n_chains (e.g. K = 16)"
            )
        k = self.n_superchains
        m = self.positions.shape[0] // k  # chains past K * M (uneven split) are left out
        return _diagnostics_nested.nested_rhat(np.asarray(self.positions)[None, : k * m], k)

    @property
    def nested_rhat_threshold(self) -> float:
        """What `nested_rhat` stays below for a converged ensemble (alpha 0.01 over all axes)."""
        if self.n_superchains is None:
            raise ValueError("nested_rhat_threshold needs chains started in superchains")
        k = self.n_superchains
        n, d = self.positions.shape
        return _diagnostics_nested.nested_rhat_threshold(k, n // k, d)

    @property
    def ess_per_second(self) -> float:
        """Smallest ESS over coordinates of the recorded trajectory per second of `wall_time`."""
        self._need_trace("ess_per_second")
        if self.wall_time is None:
            raise ValueError("ess_per_second needs wall_time")
        return _diagnostics_nested.ess_per_second(self.ess, self.wall_time)

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
