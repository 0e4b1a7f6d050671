"""Automatic bounds: the extremes of a first pass over the data, made into a map's bounds."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["BoundsError", "auto_bounds"]

# The smallest width of an automatic axis, in steps of the spacing of its values per bin in the
# dtype maps are evaluated in (float32 under JAX's default, float64 with jax_enable_x64): below
# that, neighbouring nodes would round to the same number and the map would evaluate to NaN.
_ULPS_PER_BIN = 4
# The cells of a map must have a volume whose density ``count / (total * volume)`` is a normal
# float64 (about 1e-308 .. 1e308, with up to ~1e19 rows counted): 1e-280 .. 1e280 leaves room.
_LOG_VOLUME = math.log(1e280)


class BoundsError(ValueError):
    """Automatic bounds that no map can use (naming the variable and the files)."""


def _where(lo_from: str | None, hi_from: str | None) -> str:
    if lo_from is None and hi_from is None:
        return ""
    if lo_from == hi_from:
        return f" (from {lo_from})"
    return f" (minimum in {lo_from}, maximum in {hi_from})"


def _eval_dtype():
    """The float dtype energy maps are evaluated in: JAX's default float."""
    try:
        import jax

        return np.float64 if jax.config.read("jax_enable_x64") else np.float32
    except Exception:  # pragma: no cover - jax is a dependency; be safe without it
        return np.float32


def auto_bounds(names, lo, hi, lo_from, hi_from, shape, fixed) -> list:
    """Bounds of the axes whose ``fixed`` entry is None, from the data's finite extremes.

    A constant gets one unit either side, more for a large value so that its nodes are distinct
    numbers in the dtype maps are evaluated in (float32 by default: ``1.7e18`` gets
    ``+- 1.8e13`` at 64 bins); a span narrower than ``4`` spacings of that dtype per bin is
    widened around its centre to that. The resulting axes are checked: inside that dtype's
    finite range, finite and strictly increasing bin edges, and cells whose volume (with the
    fixed axes) makes a finite density.

    Args:
        names: variable names, one per axis.
        lo, hi: the finite extremes of each axis (``inf`` / ``-inf`` when nothing survived).
        lo_from, hi_from: the file that gave each extreme (for the error message).
        shape: bins per axis.
        fixed: the bounds already known per axis, or None where automatic.

    Returns:
        ``fixed`` with every None replaced, or None when an automatic axis has no data.

    Raises:
        BoundsError: the extremes give no usable axis (naming the variable and files).
    """
    dtype = _eval_dtype()
    limit = float(np.finfo(dtype).max) / 4  # room for the half bins beyond the bounds
    out = []
    for i, b in enumerate(fixed):
        if b is not None:
            out.append(tuple(b))
            continue
        a, z = float(lo[i]), float(hi[i])
        if not (math.isfinite(a) and math.isfinite(z)):
            return None
        where = _where(lo_from[i], hi_from[i])
        n = int(shape[i])
        top = max(abs(a), abs(z))
        if top > limit:
            raise BoundsError(
                f"automatic bounds of {names[i]}: the data span [{lo[i]:.17g}, {hi[i]:.17g}]"
                f"{where} reaches beyond the {np.dtype(dtype).name} range maps are evaluated "
                f"in; pass bounds for {names[i]} (--bounds), drop the outliers with a profile "
                "range, or ask a unit that scales them down"
            )
        min_span = (n - 1) * _ULPS_PER_BIN * float(np.spacing(dtype(top)))
        if a == z:  # a constant: one unit either side, so the map has a width
            half = max(0.5, min_span / 2)
            a, z = a - half, z + half
        elif z - a < min_span:  # near-constant: widened so that the bins are distinct doubles
            mid = a / 2 + z / 2
            a, z = mid - min_span / 2, mid + min_span / 2
        if not (math.isfinite(a) and math.isfinite(z) and math.isfinite(z - a)):
            raise BoundsError(
                f"automatic bounds of {names[i]}: the data span [{lo[i]:.17g}, {hi[i]:.17g}]"
                f"{where} is too wide for float64 bins; pass bounds for {names[i]} "
                "(--bounds) or drop the outliers with a profile range"
            )
        dx = (z - a) / (n - 1)
        edges = np.linspace(a - dx / 2, z + dx / 2, n + 1)
        if not (np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)):
            raise BoundsError(
                f"automatic bounds of {names[i]}: the data span [{lo[i]:.17g}, {hi[i]:.17g}]"
                f"{where} gives no distinct float64 bins at {n} bins; pass bounds (--bounds)"
            )
        out.append((a, z))
    log_volume = sum(math.log((z - a) / (n - 1)) for (a, z), n in zip(out, shape, strict=True))
    if abs(log_volume) > _LOG_VOLUME:
        auto = [i for i, b in enumerate(fixed) if b is None]
        desc = ", ".join(
            f"{names[i]} [{out[i][0]:.6g}, {out[i][1]:.6g}]{_where(lo_from[i], hi_from[i])}"
            for i in auto
        )
        raise BoundsError(
            f"automatic bounds give map cells of volume 1e{log_volume / math.log(10):.0f}, "
            f"beyond float64 densities: {desc}; pass bounds (--bounds) in a smaller unit range"
        )
    return out
