"""Draws as the ecosystem reads them: an ``xarray.Dataset`` with ``chain`` / ``draw`` dims (ArviZ).

ArviZ (and anything built on xarray) reads a Dataset whose variables have the dims
``("chain", "draw", ...)``: one variable per coordinate of the state, named by the target's axis
names. `to_xarray` builds it from draws shaped ``(n_chains, n_draws, d)``; `to_arviz` puts it in
ArviZ's container (the ``xarray.DataTree`` of ArviZ >= 1, ``InferenceData`` of ArviZ 0.x), so
that ``arviz.rhat``, ``arviz.ess``, ``arviz.summary`` and the plots work. xarray is needed (it is
in the ``dev`` extra); ArviZ is not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jax.typing import ArrayLike

__all__ = ["draw_names", "to_arviz", "to_xarray"]


def draw_names(names: Sequence[str] | None, d: int) -> list[str]:
    """Variable names for ``d`` coordinates: the given ones (checked) or ``x0 ... x{d-1}``."""
    if names is None:
        return [f"x{i}" for i in range(d)]
    names = list(names)
    if len(names) != d:
        raise ValueError(f"names has {len(names)} entries {names!r} for draws of dimension {d}")
    for n in names:
        if not isinstance(n, str) or not n:
            raise ValueError(f"names must be non-empty strings, got {n!r} in {names!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"names must be unique, {dup!r} repeated in {names!r}")
    return names


def to_xarray(
    draws: ArrayLike,
    names: Sequence[str] | None = None,
    *,
    energies: ArrayLike | None = None,
    attrs: dict | None = None,
):
    """An ``xarray.Dataset`` of draws: one variable per coordinate, dims ``("chain", "draw")``.

    Args:
        draws: ``(n_chains, n_draws, d)`` (a `SampleResult` trajectory is ``(n_draws, n_chains,
            d)``: its ``to_xarray`` transposes it).
        names: one name per coordinate (None: ``x0 ... x{d-1}``).
        energies: ``(n_chains, n_draws)`` energies of the draws, stored as variable ``energy``
            (it must then not be one of ``names``), or None.
        attrs: attributes of the Dataset (e.g. method, step size, thin).

    Returns:
        ``xarray.Dataset`` with coordinates ``chain = 0 .. n_chains-1`` and ``draw = 0 ..
        n_draws-1``; the arrays are NumPy views of ``draws`` where possible (no copy).

    Raises:
        ValueError: a shape or a name that does not fit (naming it).

    Example:
        >>> ds = to_xarray(np.zeros((4, 100, 2)), ["speed", "power"])
        >>> dict(ds["speed"].sizes)
        {'chain': 4, 'draw': 100}
    """
    import xarray as xr

    x = np.asarray(draws)
    if x.ndim != 3:
        raise ValueError(f"draws must have shape (n_chains, n_draws, d), got {x.shape}")
    n_chains, n_draws, d = x.shape
    names = draw_names(names, d)
    coords = {"chain": np.arange(n_chains), "draw": np.arange(n_draws)}
    data = {n: (("chain", "draw"), x[:, :, i]) for i, n in enumerate(names)}
    if energies is not None:
        e = np.asarray(energies)
        if e.shape != (n_chains, n_draws):
            raise ValueError(
                f"energies must have shape (n_chains, n_draws) = {(n_chains, n_draws)}, "
                f"got {e.shape}"
            )
        if "energy" in data:
            raise ValueError("a coordinate is named 'energy': pass energies=None or rename it")
        data["energy"] = (("chain", "draw"), e)
    return xr.Dataset(data, coords=coords, attrs=dict(attrs or {}))


def to_arviz(
    draws: ArrayLike,
    names: Sequence[str] | None = None,
    *,
    energies: ArrayLike | None = None,
    attrs: dict | None = None,
):
    """The draws in ArviZ's container: an ``xarray.DataTree`` (ArviZ >= 1) or ``InferenceData``.

    The coordinates go to the ``posterior`` group; ``energies`` (if given) to ``sample_stats``
    as ``energy``.

    Args:
        draws, names, energies, attrs: as in `to_xarray`.

    Returns:
        An ``xarray.DataTree`` with groups ``posterior`` (and ``sample_stats``), what ArviZ 1.x
        (``arviz_base``) reads; with only ArviZ 0.x installed, ``arviz.InferenceData`` of the
        same groups.
    """
    import xarray as xr

    post = to_xarray(draws, names, attrs=attrs)
    groups = {"posterior": post}
    if energies is not None:
        e = np.asarray(energies)
        if e.shape != tuple(post.sizes[k] for k in ("chain", "draw")):
            raise ValueError(
                f"energies must have shape (n_chains, n_draws) = "
                f"{(post.sizes['chain'], post.sizes['draw'])}, got {e.shape}"
            )
        groups["sample_stats"] = xr.Dataset(
            {"energy": (("chain", "draw"), e)}, coords={k: post[k] for k in ("chain", "draw")}
        )
    if _has("arviz") and not _has("arviz_base"):
        import arviz  # ArviZ 0.x only: its own container

        return arviz.InferenceData(**groups)
    return xr.DataTree.from_dict(groups)


def _has(module: str) -> bool:
    """Whether a module is installed (found, not imported: no import-time warnings)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None
