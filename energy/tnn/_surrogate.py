"""The trained surrogate: an ensemble of energy networks plus everything needed to use it."""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from ._model import NetConfig, apply_ensemble

__all__ = ["BARRIER", "Surrogate"]

# Outside the bounds of the map it learnt from, a map surrogate adds
# BARRIER * e_scale * sum_j (excess_j / width_j)^2: one energy standard deviation at 10 % of a
# box width outside, 25 at 50 %, and its gradient points back into the box (like the map's own).
BARRIER = 100.0

_KINDS = ("map", "samples")


@jax.tree_util.register_pytree_node_class
class Surrogate:
    """A Flax energy surrogate of K ensemble members, usable wherever an EnergyMap is.

    Member k has energy E_k(x, sigma); the surrogate's energy is their mean and its uncertainty
    their spread:

        E(x) = (1/K) sum_k E_k(x, sigma_0),   U(x) = std_k E_k(x, sigma_0),

    with sigma_0 = 0 for a surrogate of a map (the map itself) and the smallest noise level for a
    noise-conditional surrogate learnt from samples. States are normalised inside,
    u = (x - loc) / norm, so the networks see order-one inputs; noise levels sigma are relative:
    level sigma smooths axis j by a Gaussian of width sigma * scale_j.

    A Surrogate is a pytree (the network weights and normalisation arrays are leaves; the network
    structure, names, units and provenance are static), so it passes through jit, vmap and grad
    and can be an argument of a jitted function. Build one with `energy.tnn.fit` or
    `energy.tnn.fit_samples`, restore one with `energy.tnn.load`.

    Attributes:
      kind: "map" (regression of an EnergyMap) or "samples" (denoising score matching).
      names, units: per-axis names and units (tuples of str) or None.
      ndim: number of state variables d.
      scale: (d,) physical size of one relative unit per axis (the map's hi - lo for a map
        surrogate, the data standard deviation for a samples surrogate).
      noise_levels: (L,) decreasing relative noise levels that `energy_at` understands.
      members: ensemble size K.
      bounds: ((lo, hi), ...) the box it was trained on (the map's bounds or the data range).
      lo, hi: (d,) the map's box for a map surrogate (samplers reflect there); None otherwise.
      provenance: a JSON-able dict (what it was trained on, settings, loss log).
    """

    def __init__(
        self,
        *,
        graphdef: nnx.GraphDef,
        config: NetConfig,
        params: Any,
        loc: ArrayLike,
        norm: ArrayLike,
        scale: ArrayLike,
        e_shift: ArrayLike,
        e_scale: ArrayLike,
        noise_levels: ArrayLike,
        box_lo: ArrayLike,
        box_hi: ArrayLike,
        kind: str,
        c_floor: float,
        c_mean: float,
        c_std: float,
        names: tuple[str, ...] | None = None,
        units: tuple[str, ...] | None = None,
        provenance: str = "{}",
    ):
        if kind not in _KINDS:
            raise ValueError(f"Surrogate kind must be one of {_KINDS}, got {kind!r}")
        self.graphdef = graphdef
        self.config = config
        self.params = params
        self.loc = loc
        self.norm = norm
        self.scale = scale
        self.e_shift = e_shift
        self.e_scale = e_scale
        self.noise_levels = noise_levels
        self.box_lo = box_lo
        self.box_hi = box_hi
        self.kind = kind
        # Numeric normalisation of the noise level: leaves (float32 scalars), so that a refit
        # with other constants reuses the compiled program of the same architecture.
        self.c_floor = jnp.asarray(c_floor, jnp.float32)
        self.c_mean = jnp.asarray(c_mean, jnp.float32)
        self.c_std = jnp.asarray(c_std, jnp.float32)
        self.names = None if names is None else tuple(names)
        self.units = None if units is None else tuple(units)
        self._provenance = provenance if isinstance(provenance, str) else json.dumps(provenance)

    # -- pytree -------------------------------------------------------------------------------
    _LEAVES = (
        "params",
        "loc",
        "norm",
        "scale",
        "e_shift",
        "e_scale",
        "noise_levels",
        "box_lo",
        "box_hi",
        "c_floor",
        "c_mean",
        "c_std",
    )
    _STATIC = ("graphdef", "config", "kind", "names", "units")

    def tree_flatten(self):
        """Arrays (weights, normalisation) are leaves; structure and metadata are static.

        The provenance (a JSON string) is static and compared by value, so a surrogate that
        leaves a jitted function carries its own; `_bare` drops it for internal compiled calls.
        """
        children = tuple(getattr(self, n) for n in self._LEAVES)
        aux = tuple(getattr(self, n) for n in self._STATIC) + (self._provenance,)
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        """Rebuild without validation (leaves may be tracers or batching sentinels)."""
        obj = object.__new__(cls)
        for n, v in zip(cls._LEAVES, children, strict=True):
            setattr(obj, n, v)
        for n, v in zip(cls._STATIC, aux[:-1], strict=True):
            setattr(obj, n, v)
        obj._provenance = aux[-1]
        return obj

    def _bare(self) -> Surrogate:
        """The same surrogate without provenance: what internal jitted calls take as argument,
        so that surrogates of one architecture share compiled code whatever their history."""
        obj = object.__new__(type(self))
        obj.__dict__.update(self.__dict__)
        obj._provenance = "{}"
        return obj

    # -- metadata -----------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of state variables d."""
        return self.config.ndim

    @property
    def members(self) -> int:
        """Ensemble size K."""
        return self.config.members

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        """The box it was trained on, ((lo_1, hi_1), ...): the map's bounds or the data range."""
        lo, hi = np.asarray(self.box_lo, np.float64), np.asarray(self.box_hi, np.float64)
        return tuple((float(a), float(b)) for a, b in zip(lo, hi, strict=True))

    @property
    def lo(self) -> jax.Array | None:
        """Lower bounds (d,) of a map surrogate (its map's); None for a samples surrogate.

        Samplers treat lo/hi as a box to stay in: a samples surrogate has none (its energy
        rises quadratically away from the data instead).
        """
        return self.box_lo if self.kind == "map" else None

    @property
    def hi(self) -> jax.Array | None:
        """Upper bounds (d,) of a map surrogate; None for a samples surrogate (see `lo`)."""
        return self.box_hi if self.kind == "map" else None

    @property
    def provenance(self) -> dict:
        """What it was trained on, the settings, and the loss log (a JSON-able dict)."""
        return json.loads(self._provenance)

    @property
    def sigma0(self) -> jax.Array:
        """The noise level `energy` uses: 0 (the map) or the smallest trained level."""
        if self.kind == "map":
            return jnp.zeros((), jnp.float32)
        return jnp.asarray(self.noise_levels)[-1]

    def __repr__(self) -> str:
        return (
            f"Surrogate(kind={self.kind!r}, ndim={self.ndim}, members={self.members}, "
            f"width={self.config.width}, depth={self.config.depth}, names={self.names}, "
            f"noise_levels={len(np.asarray(self.noise_levels))})"
        )

    # -- evaluation ---------------------------------------------------------------------------
    def _cond(self, sigma: jax.Array) -> jax.Array:
        """Normalised log noise level fed to the networks."""
        return (jnp.log(sigma + self.c_floor) - self.c_mean) / self.c_std

    def member_energies_one(self, x: jax.Array, sigma: jax.Array) -> jax.Array:
        """Energies E_k(x, sigma) of all members at one state x (d,): shape (K,)."""
        x = jnp.asarray(x, jnp.float32)
        sigma = jnp.asarray(sigma, jnp.float32)
        u = (x - self.loc) / self.norm
        if self.kind == "samples":
            # The data density smoothed by sigma has std ~ sqrt(1 + sigma^2) in u: rescaling by it
            # and adding the Gaussian energy |u'|^2 / 2 leaves the networks an order-one residual
            # at every level, and keeps E rising quadratically far from the data.
            s = jnp.maximum(sigma, jnp.asarray(self.noise_levels)[-1])
            v = u / jnp.sqrt(1.0 + s * s)
            raw = apply_ensemble(self.graphdef, self.params, v, self._cond(s))
            return raw + 0.5 * jnp.sum(v * v) - self.e_shift
        s = jnp.maximum(sigma, 0.0)
        raw = apply_ensemble(self.graphdef, self.params, u, self._cond(s))
        width = self.box_hi - self.box_lo
        excess = (jnp.maximum(self.box_lo - x, 0.0) + jnp.maximum(x - self.box_hi, 0.0)) / width
        barrier = BARRIER * self.e_scale * jnp.sum(excess * excess)
        return self.e_shift + self.e_scale * raw + barrier

    def member_energies(self, x: ArrayLike, sigma: ArrayLike | None = None) -> jax.Array:
        """Energies of every member: x (..., d) -> (..., K)."""
        x = self._check_x(x)
        sigma = self.sigma0 if sigma is None else jnp.asarray(sigma, jnp.float32)
        flat = x.reshape(-1, self.ndim)
        out = jax.vmap(self.member_energies_one, in_axes=(0, None))(flat, sigma)
        return out.reshape(*x.shape[:-1], self.members)

    def energy_at(self, x: ArrayLike, sigma: ArrayLike) -> jax.Array:
        """Ensemble-mean energy of x (..., d) smoothed at relative noise level sigma: (...,).

        E_sigma(x) = (1/K) sum_k E_k(x, sigma). For a map surrogate sigma = 0 is the map itself
        and sigma = m.noise_levels[i] its i-th pyramid level; for a samples surrogate sigma is
        clamped below at the smallest trained level (the networks never saw less noise).

        Args:
          x: states, shape (..., d), physical units.
          sigma: relative noise level (scalar; may be traced).

        Returns:
          Energies, shape (...,).

        Example:
          >>> e = s.energy_at(x, s.noise_levels[0])
        """
        return jnp.mean(self.member_energies(x, sigma), axis=-1)

    def energy(self, x: ArrayLike) -> jax.Array:
        """Ensemble-mean energy E(x) for x of shape (..., d): (...,). Works under jit/vmap/grad.

        E(x) = energy_at(x, sigma_0) with sigma_0 = 0 for a map surrogate and the smallest noise
        level for a samples surrogate.

        Args:
          x: states, shape (..., d), physical units.

        Returns:
          Energies, shape (...,).

        Example:
          >>> jax.grad(lambda z: s.energy(z))(jnp.zeros(s.ndim)).shape
          (d,)
        """
        return self.energy_at(x, self.sigma0)

    __call__ = energy

    def log_prob(self, x: ArrayLike) -> jax.Array:
        """Unnormalised log density -E(x), shape (...,)."""
        return -self.energy(x)

    def uncertainty(self, x: ArrayLike, sigma: ArrayLike | None = None) -> jax.Array:
        """Ensemble spread U(x) = std_k E_k(x, sigma) (energy units), x (..., d) -> (...,).

        Small where the members saw data and agree, large far from it (where each member
        extrapolates its own way). With a single member it is 0 everywhere.

        Args:
          x: states, shape (..., d).
          sigma: relative noise level (default: the one `energy` uses).

        Returns:
          Standard deviations across members, shape (...,).

        Example:
          >>> s.uncertainty(far) > s.uncertainty(near)
        """
        e = self.member_energies(x, sigma)
        if self.members < 2:
            return jnp.zeros(e.shape[:-1], e.dtype)
        return jnp.std(e, axis=-1, ddof=1)

    def _check_x(self, x: ArrayLike) -> jax.Array:
        """States as a float32 array (..., d); a wrong last axis is a clear error."""
        x = jnp.asarray(x, jnp.float32)
        if x.ndim == 0 or x.shape[-1] != self.ndim:
            raise ValueError(
                f"x must have shape (..., {self.ndim}) for this {self.ndim}-D surrogate, "
                f"got shape {tuple(x.shape)}"
            )
        return x

    def save(self, directory) -> None:
        """Write an orbax checkpoint plus metadata to directory (see `energy.tnn.load`)."""
        from ._checkpoint import save

        save(self, directory)
