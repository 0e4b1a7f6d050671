"""`EnergyMap`: energies on a regular grid, as a pytree of device arrays."""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _grid, _interp, _io, _pyramid

MAP_FORMAT = "groundstate.energy_map"
# Default noise pyramid: N_LEVELS geometric levels from half of each axis' span (a blob over the
# whole box, so annealed chains can cross between modes) down to one grid cell.
N_LEVELS = 10
SIGMA_MAX = 0.5
# Default margin of `from_samples` bounds: 10% of the data's range on each side, so the tails
# of the data sit inside the map rather than on its faces.
MARGIN = 0.1

ArrayLike = jax.typing.ArrayLike


def _float_dtype():
    """float64 under ``jax_enable_x64``, float32 otherwise."""
    return jnp.zeros(()).dtype if jax.config.jax_enable_x64 else jnp.float32


class _Info:
    """Informational metadata (n_samples, provenance, exact bounds) in the pytree's aux data.

    Compared and hashed by value (a canonical JSON string), so a map that leaves a jitted function
    carries its own n_samples and provenance, never those of an earlier call with the same
    shapes. The map's own compiled evaluation (`energy`, `energy_at`) takes `EnergyMap._bare`
    instead, so maps that differ only in this metadata still share that code.
    """

    __slots__ = ("_key", "bounds", "n_samples", "provenance")

    def __init__(self, n_samples: int | None, provenance: dict, bounds=None):
        self.n_samples = n_samples
        self.provenance = provenance
        # The bounds as given, in float64 (the leaves hold them in the map's dtype).
        self.bounds = bounds
        self._key = json.dumps([n_samples, provenance, bounds], sort_keys=True, default=repr)

    def __eq__(self, other):
        return isinstance(other, _Info) and other._key == self._key

    def __hash__(self):
        return hash(self._key)


# The metadata of `EnergyMap._bare`: one constant, so bare maps of one structure share code.
_NO_INFO = _Info(None, {}, None)


def _labels(labels, d: int, what: str, default) -> tuple[str, ...]:
    """Names or units as a tuple of d strings."""
    if labels is None:
        return tuple(default(i) for i in range(d))
    if isinstance(labels, str):
        labels = [labels]
    labels = tuple(labels)
    if len(labels) != d:
        raise ValueError(f"{what} has {len(labels)} entries, the map has {d} axes: {labels!r}")
    out = []
    for v in labels:
        if v is None:
            v = ""
        if not isinstance(v, str):
            raise ValueError(f"{what} must be strings, got {v!r}")
        out.append(v)
    return tuple(out)


def _noise_levels(levels, shape: tuple[int, ...]) -> np.ndarray:
    """Pyramid levels (relative units), decreasing and positive."""
    if levels is None:
        finest = 1.0 / (min(shape) - 1)  # one cell on the coarsest axis
        if finest >= SIGMA_MAX:
            return np.array([SIGMA_MAX])
        return np.geomspace(SIGMA_MAX, finest, N_LEVELS)
    arr = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"noise_levels must be a non-empty 1-D sequence, got {levels!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"noise_levels must be finite and positive, got {arr}")
    if np.any(np.diff(arr) >= 0):
        raise ValueError(f"noise_levels must be strictly decreasing, got {arr}")
    return arr


@jax.tree_util.register_pytree_node_class
class EnergyMap:
    """Energies ``E(x) = -log p(x)`` at the nodes of a regular grid, interpolated in between.

    Node ``k`` of axis ``i`` sits at ``lo_i + k * (hi_i - lo_i) / (n_i - 1)`` (``np.linspace``).
    Between nodes the energy is multilinear (``method="linear"``, equal to
    ``scipy.interpolate.RegularGridInterpolator(method="linear")``) or a C2 cubic B-spline
    (``method="cubic"``, equal to ``scipy.ndimage.map_coordinates(order=3, mode="mirror")``).
    Outside the bounds the energy at the nearest point of the box is increased by
    ``sum_j r_j^2 / (1 + r_j)`` with ``r_j`` the distance beyond face j in grid cells: zero with zero
    slope at the face, then rising one nat per cell; finite for any finite input, with a gradient
    pointing back into the box.

    The density is ``P(x) = exp(-E(x)) / Z`` with ``log Z`` by quadrature over the bounds
    (`log_z`; 0 up to quadrature error for maps built from samples or counts).

    A map is a pytree: its arrays are leaves (energies, bounds, the noise pyramid), names, units,
    the interpolation method and the informational metadata (n_samples, provenance, compared by
    value) are static. It passes through ``jit``, ``vmap``, ``grad`` and ``jax.device_put``, and a
    map returned by a jitted function keeps its own metadata; `energy` and `energy_at` of maps of
    the same shape, names, units and method share compiled code.

    The noise pyramid (hierarchical maps): `noise_levels` are in RELATIVE units, a level ``s``
    smooths axis ``j`` by a Gaussian of width ``s * (hi_j - lo_j)`` (see `scale`). Level ``s`` is the
    map's density convolved with that Gaussian (zero outside the bounds), i.e. the noise-perturbed
    density of annealed Langevin dynamics (Song & Ermon, 2019); `energy_at` reads it. Each level
    is held on a grid coarse enough for its width (`level_shapes`: 4 nodes per sigma per axis,
    never finer than the map) and interpolated like the map. The pyramid is built on the map's
    device, once, the first time it is asked for (`energy_at`, `pyramid`, `noise_levels`); a map
    that is only evaluated never builds it.

    Build maps with `from_grid`, `from_samples` or `from_counts`; load them with `energy.load`.
    """

    def __init__(
        self,
        values: jax.Array,
        lo: jax.Array,
        hi: jax.Array,
        coeffs: jax.Array | None,
        pyramid: jax.Array | None,
        noise_levels: jax.Array,
        log_z: jax.Array,
        names: tuple[str, ...],
        units: tuple[str, ...],
        method: str,
        info: _Info,
        levels_host: tuple[float, ...],
        level_shapes: tuple[tuple[int, ...], ...],
    ):
        self._values = values
        self._lo = lo
        self._hi = hi
        self._coeffs = coeffs
        # Every level's interpolation table, flat and concatenated (coarsest first), or None
        # until first asked for; the levels as Python floats set the levels' grids (static).
        self._pyramid = pyramid
        self._noise_levels = noise_levels
        self._log_z = log_z
        self._names = names
        self._units = units
        self._method = method
        self._info = info
        self._levels_host = levels_host
        self._level_shapes = level_shapes

    # ---------------------------------------------------------------- pytree protocol
    def tree_flatten(self):
        children = (
            self._values,
            self._lo,
            self._hi,
            self._coeffs,
            self._pyramid,
            self._noise_levels,
            self._log_z,
        )
        aux = (
            self._names,
            self._units,
            self._method,
            self._info,
            self._levels_host,
            self._level_shapes,
        )
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_grid(
        cls,
        values: ArrayLike,
        bounds: Sequence[tuple[float, float]],
        names: Sequence[str] | None = None,
        units: Sequence[str] | None = None,
        *,
        method: str = "linear",
        noise_levels: Sequence[float] | None = None,
        n_samples: int | None = None,
        provenance: dict | None = None,
    ) -> EnergyMap:
        """A map from energies at the grid nodes.

        Args:
            values: energies at the nodes, shape ``(n_1, ..., n_d)``, each ``n_i >= 2``, finite.
            bounds: ``[(lo_i, hi_i)]`` per axis; node ``k`` of axis ``i`` is at
                ``lo_i + k * (hi_i - lo_i) / (n_i - 1)``.
            names: axis names (default ``x0, x1, ...``).
            units: axis units (default ``""``).
            method: ``"linear"`` (multilinear) or ``"cubic"`` (C2 B-spline).
            noise_levels: pyramid levels in relative units, decreasing (default: 10 geometric
                levels from 0.5 of each axis' span down to one cell).
            n_samples: samples behind the map, if any (informational).
            provenance: a JSON-able dict stored with the map.

        Returns:
            The `EnergyMap`.

        Example:
            >>> import numpy as np, energy
            >>> x = np.linspace(-3, 3, 61)
            >>> m = energy.EnergyMap.from_grid(0.5 * x**2, [(-3, 3)], names=["z"])
            >>> round(float(m.energy(np.array([1.0]))), 3)
            0.5
        """
        return cls._from_nodes(
            values,
            bounds,
            names,
            units,
            method=method,
            noise_levels=noise_levels,
            n_samples=n_samples,
            provenance=provenance,
        )

    @classmethod
    def _from_nodes(
        cls,
        values,
        bounds,
        names=None,
        units=None,
        *,
        method: str = "linear",
        noise_levels=None,
        n_samples=None,
        provenance=None,
        owned: bool = False,
        log_z: float | None = None,
    ) -> EnergyMap:
        """`from_grid`; ``owned``: ``values`` is a private array nobody else holds or changes.

        An owned float32 array aligned to 64 bytes becomes the map's CPU buffer without a copy
        (``jax.device_put`` shares it): a build never holds its energies twice. ``log_z``: the
        log Z these values were found to have (a loaded file's), else computed here.
        """
        v = np.asarray(values)
        if v.dtype.kind not in "fiu":
            raise ValueError(f"values must be numeric, got dtype {v.dtype}")
        if v.ndim < 1:
            raise ValueError("values must have at least one axis (shape (n_1, ..., n_d))")
        if any(n < 2 for n in v.shape):
            raise ValueError(f"every axis needs at least 2 nodes, values has shape {v.shape}")
        if v.size > _grid.MAX_NODES:
            raise ValueError(f"grid of {v.size} nodes is larger than the {_grid.MAX_NODES} allowed")
        bad = _grid.count_nonfinite(v)
        if bad:
            raise ValueError(
                f"values has {bad} non-finite energies (NaN or inf); all must be finite"
            )
        b = _grid.check_bounds(bounds, v.ndim)
        d = v.ndim
        names_t = _labels(names, d, "names", lambda i: f"x{i}")
        units_t = _labels(units, d, "units", lambda i: "")
        _interp.make_spec(v.shape, method)  # validates the method
        levels = _noise_levels(noise_levels, v.shape)
        dtype = _float_dtype()
        # Store in the working dtype; the pyramid and log Z are computed from what is stored.
        stored = v.astype(dtype, copy=False)
        # jnp.asarray copies; device_put of an owned array may share it (CPU, 64-byte aligned).
        values = jax.device_put(stored) if owned and stored is v else jnp.asarray(stored)
        coeffs = None
        if method == "cubic":
            coeffs = jax.device_put(_grid.cubic_coefficients(stored, dtype))
        # log Z of a cubic map: quadrature of the multilinear interpolant (agrees to O(h^2)).
        if log_z is None:
            log_z = _pyramid.log_integral(values, b)
        info = _Info(
            None if n_samples is None else int(n_samples),
            dict(provenance or {"source": "grid"}),
            tuple((float(a), float(c)) for a, c in b),
        )
        return cls(
            values,
            jnp.asarray(b[:, 0], dtype=dtype),
            jnp.asarray(b[:, 1], dtype=dtype),
            coeffs,
            None,
            jnp.asarray(levels, dtype=dtype),
            jnp.asarray(log_z, dtype=dtype),
            names_t,
            units_t,
            method,
            info,
            tuple(float(s) for s in levels.astype(dtype)),
            _pyramid.level_shapes(v.shape, levels),
        )

    @classmethod
    def from_counts(
        cls,
        counts: ArrayLike,
        bounds: Sequence[tuple[float, float]],
        smoothing: float | Sequence[float] = 1.0,
        names: Sequence[str] | None = None,
        units: Sequence[str] | None = None,
        *,
        provenance: dict | None = None,
        method: str = "linear",
        noise_levels: Sequence[float] | None = None,
    ) -> EnergyMap:
        """A map from a histogram accumulated elsewhere (ingest, a cluster, a previous run).

        The histogram lives on the node grid: bin ``k`` of axis ``i`` is centred on node ``k``,
        with edges `bin_edges` ``(bounds, counts.shape)``. Counts from several places merge by
        adding before the call.

        Rule: ``c = G_s * counts`` (Gaussian of ``smoothing`` cells per axis, reflected at the
        faces so no count leaves the box), ``E = -log(c / (N dV))``
        where there is data; empty cells rise one nat per cell of distance from the nearest data
        cell; then ``E += log Z`` so that ``exp(-E)`` integrates to 1 over the bounds.

        Args:
            counts: non-negative counts, shape ``(n_1, ..., n_d)``.
            bounds: ``[(lo_i, hi_i)]`` per axis (node positions, as in `from_grid`).
            smoothing: Gaussian width in grid cells, one for all axes or one per axis (0: none).
            names, units: as in `from_grid`.
            provenance: a JSON-able dict (sources, counts per reason, ...), stored with the map.
            method, noise_levels: as in `from_grid`.

        Returns:
            The `EnergyMap`, whose `n_samples` is the total count.
        """
        c = np.asarray(counts)  # no float64 copy: the build reads it slab by slab
        if c.ndim < 1 or any(n < 2 for n in c.shape):
            raise ValueError(f"counts must have at least 2 bins per axis, got shape {c.shape}")
        b = _grid.check_bounds(bounds, c.ndim)
        sm = _smoothing(smoothing, c.ndim)
        e, stats = _grid.counts_to_energies(c, b, sm)
        prov = {"source": "counts"}
        prov.update(provenance or {})
        prov.update(
            {
                "smoothing_cells": sm,
                "bins": list(c.shape),
                "build_time": _now(),
                **stats,
            }
        )
        total = stats["total_counts"]
        n = int(round(total)) if float(total).is_integer() else total
        return cls._from_nodes(
            e,
            b,
            names,
            units,
            method=method,
            noise_levels=noise_levels,
            n_samples=n,
            provenance=prov,
            owned=True,
        )

    @classmethod
    def from_samples(
        cls,
        samples: ArrayLike,
        bins: int | Sequence[int] = 64,
        bounds: Sequence[tuple[float, float]] | None = None,
        smoothing: float | Sequence[float] = 1.0,
        names: Sequence[str] | None = None,
        units: Sequence[str] | None = None,
        *,
        method: str = "linear",
        noise_levels: Sequence[float] | None = None,
    ) -> EnergyMap:
        """A map ``E = -log p`` from samples: histogram, Gaussian smoothing, normalised density.

        Args:
            samples: states, shape ``(n, d)`` (a 1-D array is ``(n, 1)``); all finite.
            bins: nodes per axis (one for all axes or one per axis). With an integer and a grid
                larger than the device's node cap (2**24 on a CPU, more on an accelerator with
                the memory: `_grid.default_node_cap`; d >= 5 at 64 on a CPU), bins shrink to
                ``floor(cap**(1/d))`` and the provenance records ``node_cap``.
            bounds: ``[(lo_i, hi_i)]``; default: the data's range widened by 10% on each side.
                Samples outside are not counted (the provenance says how many).
            smoothing: Gaussian width in grid cells (per axis or one for all; 0: none).
            names, units, method, noise_levels: as in `from_grid`.

        Returns:
            The `EnergyMap`: ``exp(-E)`` integrates to 1 over the bounds; empty cells get finite
            energies that rise with the distance from the data.

        Example:
            >>> import numpy as np, energy
            >>> x = np.random.default_rng(0).normal(size=(100_000, 2))
            >>> m = energy.EnergyMap.from_samples(x, bins=48)
            >>> m.shape, m.n_samples
            ((48, 48), 100000)
        """
        s = np.asarray(samples, dtype=np.float64)
        if s.ndim == 1:
            s = s[:, None]
        if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
            raise ValueError(f"samples must have shape (n, d) with n, d >= 1, got {s.shape}")
        finite = np.all(np.isfinite(s), axis=1)
        if not finite.all():
            first = int(np.argmin(finite))
            raise ValueError(
                f"samples has {int((~finite).sum())} rows with NaN or inf (first: row {first}); "
                "drop them before building a map"
            )
        n, d = s.shape
        prov: dict[str, Any] = {"source": "samples"}
        if np.ndim(bins) == 0:
            nb = int(bins)
            if nb < 2:
                raise ValueError(f"bins must be at least 2, got {bins}")
            cap = _grid.default_node_cap()
            if nb**d > cap:
                reduced = int(np.floor(cap ** (1.0 / d) + 1e-9))
                prov["bins_reduced_from"] = nb
                prov["node_cap"] = cap
                nb = max(2, reduced)
            shape = (nb,) * d
        else:
            shape = tuple(int(k) for k in bins)
            if len(shape) != d or any(k < 2 for k in shape):
                raise ValueError(f"bins must be >= 2 for each of the {d} axes, got {bins!r}")
        if bounds is None:
            lo, hi = s.min(axis=0), s.max(axis=0)
            span = hi - lo
            pad = np.where(span > 0, MARGIN * span, np.maximum(1e-3 * np.abs(lo), 1e-3))
            b = np.stack([lo - pad, hi + pad], axis=1)
        else:
            b = _grid.check_bounds(bounds, d)
        edges = _grid.bin_edges(b, shape)
        counts, _ = np.histogramdd(s, bins=edges)
        outside = int(n - counts.sum())
        if outside == n:
            raise ValueError(f"none of the {n} samples lies inside the bounds {b.tolist()}")
        prov["samples_outside_bounds"] = outside
        return cls.from_counts(
            counts,
            b,
            smoothing,
            names,
            units,
            provenance=prov,
            method=method,
            noise_levels=noise_levels,
        )

    # ---------------------------------------------------------------- evaluation
    def energy(self, x: ArrayLike) -> jax.Array:
        """Energy at states ``x`` of shape ``(..., d)``, returned with shape ``(...)``.

        Differentiable (an analytic gradient from one gather of the stencil), under jit, vmap and
        grad. Outside the bounds: the barrier described in the class docstring.
        """
        return _energy_jit(self._bare(), self._points(x))

    __call__ = energy

    def _bare(self) -> EnergyMap:
        """The same map without its informational metadata (for internal jitted calls)."""
        if self._info is _NO_INFO:
            return self
        bare = self.__dict__.get("_bare_map")
        # A map never changes, except that its pyramid is built lazily: remake the copy then.
        if bare is None or bare._pyramid is not self._pyramid:
            bare = object.__new__(EnergyMap)
            bare.__dict__.update(self.__dict__)
            bare._info = _NO_INFO
            self._bare_map = bare
        return bare

    def _energy(self, x: jax.Array) -> jax.Array:
        """`energy` on checked states (traced inside `_energy_jit`)."""
        table = self._values if self._coeffs is None else self._coeffs
        flat = x.reshape((-1, self.ndim))
        e = _interp.grid_energy(
            table.reshape(-1), jnp.int32(0), self._lo, self._hi, flat, self._spec
        )
        return e.reshape(x.shape[:-1])

    def energy_at(self, x: ArrayLike, sigma: ArrayLike) -> jax.Array:
        """Energy of the noise-perturbed map at level ``sigma`` (relative units; 0: the map).

        Between pyramid levels the energy is interpolated linearly in sigma; below the finest
        level it blends into the map itself; above the coarsest it is the coarsest level.
        ``sigma`` may be traced (annealing inside a compiled loop).
        """
        self._ensure_pyramid()
        return _energy_at_jit(self._bare(), self._points(x), sigma)

    def _energy_at(self, x: jax.Array, sigma: ArrayLike) -> jax.Array:
        """`energy_at` on checked states (traced inside `_energy_at_jit`)."""
        flat = x.reshape((-1, self.ndim))
        levels = jnp.concatenate([self._noise_levels, jnp.zeros((1,), self._noise_levels.dtype)])
        s = jnp.clip(jnp.asarray(sigma, levels.dtype), 0.0, levels[0])
        # levels decrease: the bracket [levels[i+1], levels[i]] containing s
        i = jnp.clip(jnp.sum(levels[1:] >= s) - 1, 0, levels.shape[0] - 2)
        hi_s, lo_s = levels[i], levels[i + 1]
        w = (s - lo_s) / (hi_s - lo_s)  # weight of the coarser level i
        pyramid = self._pyramid
        if pyramid is None:  # a traced map whose pyramid was never built: build it in the trace
            pyramid = self._build_pyramid()
        base = self._values if self._coeffs is None else self._coeffs
        # Node units of the map; each level's grid spans the same box with its own node count.
        # The barrier outside the box is the map's (one nat per cell of the map), on every level.
        n1 = jnp.asarray(self.shape, flat.dtype)[:, None] - 1.0
        inv = (n1[:, 0] / (self._hi - self._lo))[:, None]
        u = (flat.T - self._lo[:, None]) * inv
        uc = jnp.clip(u, 0.0, n1)
        barrier = jnp.sum(_interp.barrier_cells(jnp.abs(u - uc)), axis=0)
        n_levels = len(self._level_shapes)

        def level(k):
            return _pyramid.read(pyramid, k, self._level_shapes, self.shape, self._method, uc)

        e_i = level(i)
        # The finest bracket blends into the map itself (only one branch runs).
        e_j = jax.lax.cond(
            i + 1 < n_levels,
            lambda: level(jnp.minimum(i + 1, n_levels - 1)),
            lambda: _interp.interp_nodes(base.reshape(-1), jnp.int32(0), uc, self._spec),
        )
        return (w * e_i + (1.0 - w) * e_j + barrier).reshape(x.shape[:-1])

    def _build_pyramid(self) -> jax.Array:
        """The flat pyramid of this map's energies (see `_pyramid.build`)."""
        return _pyramid.build(
            self._values, np.asarray(self._levels_host), self._level_shapes, self._method
        )

    def _ensure_pyramid(self) -> None:
        """Build the pyramid once, on the map's device, if this map holds concrete arrays."""
        if self._pyramid is not None or isinstance(self._values, jax.core.Tracer):
            return
        with jax.ensure_compile_time_eval():
            self._pyramid = self._build_pyramid()

    @property
    def pyramid(self) -> tuple[jax.Array, ...]:
        """The levels' interpolation tables, coarsest first (built on first access).

        Level i has `level_shapes` ``[i]`` nodes (cubic maps: padded by one node per side) over
        the map's bounds.
        """
        self._ensure_pyramid()
        flat = self._build_pyramid() if self._pyramid is None else self._pyramid
        pad = 2 if self._method == "cubic" else 0
        out, start = [], 0
        for shape in self._level_shapes:
            size = _pyramid.table_size(shape, self._method)
            out.append(flat[start : start + size].reshape(tuple(n + pad for n in shape)))
            start += size
        return tuple(out)

    @property
    def level_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Nodes per axis of each pyramid level's grid (coarsest first)."""
        return self._level_shapes

    def log_prob(self, x: ArrayLike) -> jax.Array:
        """``log P(x) = -E(x) - log Z`` (Z by quadrature over the bounds; see `log_z`)."""
        return -self.energy(x) - self._log_z

    def _points(self, x: ArrayLike) -> jax.Array:
        """States as an array of the map's dtype with a last axis of size d (else ValueError)."""
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(self._values.dtype)
        if x.ndim == 0 or x.shape[-1] != self.ndim:
            raise ValueError(
                f"states must have shape (..., {self.ndim}) for this {self.ndim}-D map "
                f"({', '.join(self._names)}), got shape {tuple(x.shape)}"
            )
        return x.astype(jnp.promote_types(x.dtype, self._values.dtype))

    # ---------------------------------------------------------------- derived maps
    def smoothed(self, sigma: float | Sequence[float]) -> EnergyMap:
        """A new map whose density is this one's convolved with a Gaussian.

        Args:
            sigma: width in RELATIVE units (fractions of each axis' span, like `noise_levels`);
                one value for all axes or one per axis. Physical width on axis j:
                ``sigma_j * (hi_j - lo_j)``.

        Returns:
            ``E_s = -log(G_sigma * exp(-E))`` on the same grid (zero density outside the bounds).
        """
        sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (self.ndim,))
        if not np.all(np.isfinite(sig)) or np.any(sig < 0):
            raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
        with jax.ensure_compile_time_eval():
            e = np.asarray(_pyramid.smooth(self._values, sig), np.float64)
        prov = dict(self.provenance)
        prov["smoothed_sigma"] = sig.tolist()
        return EnergyMap.from_grid(
            e,
            self.bounds,
            self._names,
            self._units,
            method=self._method,
            noise_levels=np.asarray(self._noise_levels),
            n_samples=self.n_samples,
            provenance=prov,
        )

    # ---------------------------------------------------------------- properties
    @property
    def _spec(self) -> _interp.Spec:
        return _interp.make_spec(self._values.shape, self._method)

    @property
    def values(self) -> jax.Array:
        """Energies at the nodes, shape ``(n_1, ..., n_d)``."""
        return self._values

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        """``((lo_1, hi_1), ..., (lo_d, hi_d))`` as Python floats, as they were given.

        The ``lo``/``hi`` leaves hold them in the map's dtype (float32 rounds 0.9 to
        0.8999999762); the exact values given at construction are kept beside them.
        """
        lo, hi = np.asarray(self._lo), np.asarray(self._hi)
        exact = self._info.bounds
        if exact is not None and len(exact) == lo.shape[0]:
            e = np.asarray(exact, np.float64)
            if np.array_equal(e[:, 0].astype(lo.dtype), lo) and np.array_equal(
                e[:, 1].astype(hi.dtype), hi
            ):
                return tuple(exact)
        lo, hi = lo.astype(np.float64), hi.astype(np.float64)
        return tuple((float(a), float(b)) for a, b in zip(lo, hi, strict=True))

    @property
    def lo(self) -> jax.Array:
        """Lower bounds, shape ``(d,)``."""
        return self._lo

    @property
    def hi(self) -> jax.Array:
        """Upper bounds, shape ``(d,)``."""
        return self._hi

    @property
    def scale(self) -> jax.Array:
        """Physical size of one relative unit per axis: ``hi - lo``, shape ``(d,)``."""
        return self._hi - self._lo

    @property
    def spacing(self) -> jax.Array:
        """Node spacing per axis, shape ``(d,)``."""
        return (self._hi - self._lo) / (jnp.asarray(self.shape, self._hi.dtype) - 1)

    @property
    def grid(self) -> tuple[np.ndarray, ...]:
        """Node coordinates per axis (``np.linspace(lo_i, hi_i, n_i)``)."""
        return tuple(
            np.linspace(lo, hi, n) for (lo, hi), n in zip(self.bounds, self.shape, strict=True)
        )

    @property
    def noise_levels(self) -> jax.Array:
        """Pyramid levels, decreasing, in relative units (see the class docstring).

        Reading them builds the pyramid (once) on a concrete map: whoever reads the levels
        (langevin's annealing, tnn) is about to read them, and then finds the pyramid built
        outside its compiled loop.
        """
        self._ensure_pyramid()
        return self._noise_levels

    @property
    def log_z(self) -> jax.Array:
        """``log Z = log of the integral of exp(-E)`` over the bounds (quadrature)."""
        return self._log_z

    @property
    def names(self) -> tuple[str, ...]:
        """Axis names."""
        return self._names

    @property
    def units(self) -> tuple[str, ...]:
        """Axis units."""
        return self._units

    @property
    def method(self) -> str:
        """Interpolation: ``"linear"`` or ``"cubic"``."""
        return self._method

    @property
    def ndim(self) -> int:
        """Number of axes d."""
        return self._values.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        """Nodes per axis."""
        return tuple(self._values.shape)

    @property
    def dtype(self):
        """dtype of the energies (float32, or float64 under x64)."""
        return self._values.dtype

    @property
    def n_samples(self) -> int | None:
        """How many samples were counted into the map (None for `from_grid`)."""
        return self._info.n_samples

    @property
    def provenance(self) -> dict:
        """Where the map comes from: sources, counts, smoothing, build time (a JSON-able dict)."""
        return dict(self._info.provenance)

    def __repr__(self) -> str:
        axes = ", ".join(
            f"{n}[{u}]={lo:g}..{hi:g}" if u else f"{n}={lo:g}..{hi:g}"
            for n, u, (lo, hi) in zip(self._names, self._units, self.bounds, strict=True)
        )
        return f"EnergyMap(shape={self.shape}, {axes}, method={self._method!r})"

    # ---------------------------------------------------------------- persistence
    def metadata(self) -> dict:
        """The JSON metadata written with the map (format, version, axes, provenance, checksum).

        ``checksum`` holds one SHA-256 per field and per array (`energy._io.field_checksums`):
        every field that changes an energy (bounds, method, noise levels, names, units, shape,
        dtype) is covered, and so is everything else. ``log_z``: `log_z` and the checksum of the
        energies it belongs to (``array.energies``'s), so that `load` need not integrate again.
        """
        values = np.asarray(self._values)
        meta = {
            "format": MAP_FORMAT,
            "version": _io.FORMAT_VERSION,
            "names": list(self._names),
            "units": list(self._units),
            "bounds": [list(b) for b in self.bounds],
            "shape": list(self.shape),
            "dtype": str(values.dtype),
            "method": self._method,
            "noise_levels": np.asarray(self._noise_levels, np.float64).tolist(),
            "n_samples": self.n_samples,
            "provenance": self.provenance,
            "saved": _now(),
        }
        digest = {"energies": _io.checksum(values)}
        of = f"{digest['energies']}:{values.dtype.str}:{list(values.shape)}"
        log_z = float(self._log_z)
        if np.isfinite(log_z):  # `load` reads it for the same energies instead of integrating
            meta["log_z"] = {"value": log_z, "energies": of}
        meta["checksum"] = _io.field_checksums(meta, {"energies": values}, digest)
        return meta

    def save(self, path: str | os.PathLike) -> str:
        """Write the map to ``path`` (.npz, format version 2), atomically.

        The file holds the energies, the noise pyramid if this map has built it (array
        ``pyramid``: every level's table, flat, coarsest first, with their grids in the metadata
        field ``pyramid_level_shapes``) and a JSON metadata string; it loads with
        ``np.load(path, allow_pickle=False)`` and with `energy.load`, which then reads the
        pyramid instead of building it. A map that never built its pyramid does not build it
        to save.

        Returns:
            The path written.
        """
        meta = self.metadata()
        arrays = {"energies": np.asarray(self._values)}
        if self._pyramid is not None and not isinstance(self._pyramid, jax.core.Tracer):
            arrays["pyramid"] = np.asarray(self._pyramid)
            meta["pyramid_level_shapes"] = [list(s) for s in self._level_shapes]
        # write_npz_atomic makes the checksums again, over every field and array written.
        return str(_io.write_npz_atomic(path, arrays, meta))


# Public evaluation goes through one jit per (map structure, input shape): calling `m.energy(x)`
# eagerly on a new shape compiles once instead of dispatching ~50 ops one by one.
_energy_jit = jax.jit(lambda m, x: m._energy(x))
_energy_at_jit = jax.jit(lambda m, x, sigma: m._energy_at(x, sigma))


def _smoothing(smoothing, d: int) -> list[float]:
    """Smoothing widths in cells, one per axis."""
    sm = np.broadcast_to(np.asarray(smoothing, dtype=np.float64), (d,))
    if not np.all(np.isfinite(sm)) or np.any(sm < 0):
        raise ValueError(f"smoothing must be finite and >= 0 (grid cells), got {smoothing!r}")
    return [float(v) for v in sm]


def _now() -> str:
    """UTC time stamp for provenance."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def load(path: str | os.PathLike, device: jax.Device | None = None) -> EnergyMap:
    """Load and validate an energy map written by `EnergyMap.save`.

    Checks the container, format name and version, array names, shapes, dtypes, finiteness and
    the checksum of every metadata field and array (an edited bound, method, noise level, name
    or energy is refused, naming the field; format version 1 files are refused: `upgrade`
    converts one, once).

    Args:
        path: the ``.npz`` file.
        device: where to put the arrays (default: JAX's default device).

    Returns:
        The `EnergyMap`.

    Raises:
        MapFileError: naming the file and what is wrong (a missing file is also a
            FileNotFoundError).
    """
    arrays, meta = _io.read_npz(path, MAP_FORMAT)
    # The arrays were just read for this map alone: it may hold them without a copy.
    m = map_from_arrays(path, arrays, meta, owned=True)
    if device is not None:
        m = jax.device_put(m, device)
    return m


def upgrade(path: str | os.PathLike, out: str | os.PathLike) -> str:
    """Write a format version 1 map file as version 2 at ``out``; ``path`` is left as it is.

    Version 1 files (development builds) carry one checksum, over the energies only, so
    `load` refuses them. This reads one, checks that checksum and everything `load` checks
    (format, shapes, finiteness, bounds), and writes the same energies and metadata as version 2,
    where every field and array is under its own checksum (`metadata`). The provenance gains
    ``upgraded_from`` (the old file's path, version and energies checksum). The metadata of a
    version 1 file was not under its checksum: upgrade only files you trust.

    Args:
        path: the version 1 ``.npz`` map.
        out: the new file; must not exist (nothing is overwritten).

    Returns:
        The path written.

    Raises:
        MapFileError: naming the file: not a version 1 map, its energies changed since saving,
            or any check of `load`; FileExistsError if ``out`` exists.

    Example:
        >>> energy.upgrade("old.npz", "old_v2.npz")  # doctest: +SKIP
        'old_v2.npz'
        >>> m = energy.load("old_v2.npz")  # doctest: +SKIP
    """
    src, dst = os.path.abspath(path), os.path.abspath(out)
    if os.path.exists(dst):
        raise FileExistsError(f"{out}: already exists; energy.upgrade never overwrites a file")
    arrays, meta = _io.read_npz(path, MAP_FORMAT, accept_version_1=True)
    if meta.get("version") != 1:
        raise _io.MapFileError(
            f"{path}: format version {meta.get('version')} needs no upgrade: load it with "
            "energy.load"
        )
    map_from_arrays(path, arrays, meta)  # every check of load
    new = {k: v for k, v in meta.items() if k != "checksum"}
    new["version"] = _io.FORMAT_VERSION
    prov = dict(new.get("provenance") or {})
    prov["upgraded_from"] = {"file": src, "version": 1, "energies_checksum": meta["checksum"]}
    new["provenance"] = prov
    if os.path.exists(dst):  # made meanwhile by someone else: still never overwritten
        raise FileExistsError(f"{out}: already exists; energy.upgrade never overwrites a file")
    return str(_io.write_npz_atomic(dst, {"energies": arrays["energies"]}, new))


def map_from_arrays(
    path,
    arrays: dict[str, np.ndarray],
    meta: dict,
    extra: Sequence[str] = (),
    owned: bool = False,
) -> EnergyMap:
    """Validate the map part of a container and build the map (``extra`` arrays are allowed).

    ``owned``: nobody else holds or changes ``arrays``' energies and pyramid, so the map may
    keep them without a copy (see `EnergyMap._from_nodes`).
    """
    err = _io.MapFileError
    unknown = set(arrays) - {"energies", "pyramid", *extra}
    if unknown:
        raise err(
            f"{path}: unknown arrays {sorted(unknown)}; a map file holds 'energies' "
            "(and 'pyramid') only"
        )
    if "energies" not in arrays:
        raise err(f"{path}: no 'energies' array")
    e = arrays["energies"]
    if e.dtype.kind != "f":
        raise err(f"{path}: energies must be floating point, got {e.dtype}")
    try:
        shape = [int(n) for n in meta["shape"]]
        names, units, bounds = meta["names"], meta["units"], meta["bounds"]
        method = meta.get("method", "linear")
        levels = meta.get("noise_levels")
    except (KeyError, TypeError, ValueError) as exc:
        raise err(f"{path}: metadata incomplete or malformed ({exc!r})") from exc
    if list(e.shape) != shape:
        raise err(f"{path}: energies have shape {list(e.shape)}, metadata says {shape}")
    if str(e.dtype) != meta.get("dtype", str(e.dtype)):
        raise err(f"{path}: energies are {e.dtype}, metadata says {meta.get('dtype')}")
    bad = _count_nonfinite(e)
    if bad:
        raise err(f"{path}: {bad} energies are NaN or inf")
    log_z = _saved_log_z(path, meta, e)
    try:
        m = EnergyMap._from_nodes(
            e,
            bounds,
            names,
            units,
            method=method,
            noise_levels=levels,
            n_samples=meta.get("n_samples"),
            provenance=meta.get("provenance") or {},
            owned=owned,
            log_z=log_z,
        )
    except ValueError as exc:
        raise err(f"{path}: {exc}") from exc
    if "pyramid" in arrays:
        _attach_pyramid(path, m, arrays["pyramid"], meta, owned)
    elif "pyramid_level_shapes" in meta:
        raise err(f"{path}: metadata field pyramid_level_shapes without a 'pyramid' array")
    return m


def _saved_log_z(path, meta: dict, e: np.ndarray) -> float | None:
    """The file's log Z (metadata field ``log_z``) if it belongs to exactly these energies.

    It is reused when it was saved for the energies the file holds (its ``energies`` checksum is
    theirs, which `_io.read_npz` has verified) and they are held in the dtype it was computed in;
    otherwise (files without it, edited energies, another dtype) None: integrated again. A
    malformed field is refused (MapFileError naming the file).
    """
    saved = meta.get("log_z")
    if saved is None:
        return None
    value = saved.get("value") if isinstance(saved, dict) else None
    if (
        not isinstance(saved, dict)
        or set(saved) != {"value", "energies"}
        or isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not np.isfinite(value)
    ):
        raise _io.MapFileError(
            f"{path}: metadata field log_z must be an object with a finite 'value' and the "
            f"'energies' checksum it belongs to, got {saved!r}"
        )
    sums = meta.get("checksum")
    if (
        not isinstance(sums, dict)
        or saved["energies"] != sums.get("array.energies")
        or e.dtype != np.dtype(_float_dtype())
    ):
        return None
    return float(value)


def _count_nonfinite(a: np.ndarray) -> int:
    """How many entries of ``a`` are NaN or inf: 0 at once when their sum is finite.

    A finite sum proves every entry finite (NaN and inf propagate through a sum); only a sum
    that is not (a bad entry, or finite values that overflow) pays for the count.
    """
    if a.dtype.kind != "f":
        return 0
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(a)):
            return 0
    return _grid.count_nonfinite(a)


def _attach_pyramid(path, m: EnergyMap, flat: np.ndarray, meta: dict, owned: bool = False) -> None:
    """Give a loaded map its stored pyramid, checked against the map (else MapFileError).

    ``owned``: ``flat`` is a private array, kept without a copy where it can be (CPU).
    """
    err = _io.MapFileError
    shapes = meta.get("pyramid_level_shapes")
    try:
        shapes = tuple(tuple(int(n) for n in s) for s in shapes)
    except (TypeError, ValueError) as exc:
        raise err(f"{path}: pyramid_level_shapes must be a list of grid shapes ({exc!r})") from exc
    if len(shapes) != len(m._levels_host) or any(
        len(s) != m.ndim or any(not 2 <= n <= k for n, k in zip(s, m.shape, strict=True))
        for s in shapes
    ):
        raise err(
            f"{path}: pyramid_level_shapes {[list(s) for s in shapes]} do not fit a map of "
            f"shape {list(m.shape)} with {len(m._levels_host)} noise levels"
        )
    size = sum(_pyramid.table_size(s, m.method) for s in shapes)
    if flat.dtype.kind != "f" or flat.ndim != 1 or flat.size != size:
        raise err(
            f"{path}: 'pyramid' must be a 1-D float array of {size} values for these levels, "
            f"got {flat.dtype} {list(flat.shape)}"
        )
    bad = _count_nonfinite(flat)
    if bad:
        raise err(f"{path}: {bad} pyramid values are NaN or inf")
    # The grids the pyramid was built on (equal to the map's own unless a level's width sits
    # at a rounding edge of its float32 value).
    m._level_shapes = shapes
    # device_put of an owned array of the map's dtype may share it (CPU, 64-byte aligned).
    own = owned and flat.dtype == m.dtype
    m._pyramid = jax.device_put(flat) if own else jnp.asarray(flat, m.dtype)
