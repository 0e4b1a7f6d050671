"""The shield: a jitted, batched, calibrated energy threshold that fails closed.

A state ``x`` is allowed when it is finite, inside the map's bounds, (for a surrogate) not too
uncertain, and ``E(x) <= threshold``; otherwise it is blocked with a reason code (:class:`Reason`).
``Shield.calibrate`` sets the threshold by split-conformal prediction on held-out states so that
an in-distribution state is blocked with probability at most ``alpha``.
"""

from __future__ import annotations

import copy
import enum
import functools
import json
import math
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _io
from ._map import EnergyMap, map_from_arrays

SHIELD_FORMAT = "groundstate.shield"

__all__ = [
    "Decision",
    "Reason",
    "Shield",
    "ShieldLog",
    "conformal_rank",
]

ArrayLike = Any
Array = jax.Array


class Reason(enum.IntEnum):
    """Why a state was allowed or blocked: the integer codes in ``Decision.reason``.

    When several apply, the first in this order wins: ``NOT_FINITE``, ``OUT_OF_BOUNDS``,
    ``TOO_UNCERTAIN``, ``ABOVE_THRESHOLD``.
    """

    ALLOWED = 0
    """Finite, inside the bounds, certain enough and ``E(x) <= threshold``."""
    ABOVE_THRESHOLD = 1
    """``E(x) > threshold``: a state the data has not proven."""
    OUT_OF_BOUNDS = 2
    """Outside the map's bounds (and no surrogate judges it there)."""
    NOT_FINITE = 3
    """The state has a NaN/inf coordinate, or the energy (or uncertainty) there is not finite."""
    TOO_UNCERTAIN = 4
    """The surrogate's ensemble uncertainty exceeds the shield's tolerance."""


N_REASONS = len(Reason)


class Decision:
    """The shield's verdict on a batch of states (a pytree: it can leave a jitted function).

    It behaves as the named tuple ``(allow, energy, reason, p_value)`` it was (it is no longer a
    ``tuple`` subclass): fields by name, by index (``d[0]``, ``d[-1]``, slices), unpacking
    (``allow, energy, reason, p = d``), ``len``, ``==``, ``_fields``, ``_asdict``, ``_replace``,
    pickling; a pytree of those four arrays (keyed by field name) under jit, vmap and
    ``jax.tree_util``.

    The p-value is computed when it is first asked for (``d.p_value``, ``d[3]``, unpacking,
    flattening the pytree, ``repr``) and then kept: ``sh(x)`` on a large batch decides without
    it (about half the cost of a full decision), and a caller that only reads ``allow``,
    ``energy`` or ``reason`` never pays for it. Inside a trace (``jax.jit``, ``jax.vmap``) it is
    part of the traced computation, which XLA drops when the result is unused.

    Attributes:
      allow: bool ``(...,)``, True where the state may be executed.
      energy: ``(...,)`` the energy the decision used (``+inf`` where the state is not finite).
      reason: int32 ``(...,)`` codes of :class:`Reason` (0 where allowed).
      p_value: ``(...,)`` conformal p-value ``(1 + #{i: s_i >= s(x)}) / (n + 1)`` against the
        calibration scores ``s_i``: a calibrated anomaly score, small = unusual. NaN for a shield
        built with an explicit threshold (it has no calibration scores).
    """

    __slots__ = ("_allow", "_energy", "_reason", "_p", "_make_p")
    _fields = ("allow", "energy", "reason", "p_value")

    def __init__(self, allow: Array, energy: Array, reason: Array, p_value: Array):
        set_ = object.__setattr__
        set_(self, "_allow", allow)
        set_(self, "_energy", energy)
        set_(self, "_reason", reason)
        set_(self, "_p", p_value)
        set_(self, "_make_p", None)

    @classmethod
    def _lazy(cls, allow: Array, energy: Array, reason: Array, make_p: Callable[[], Array]):
        """A decision whose p-value is ``make_p()``, called once when it is first asked for."""
        d = cls(allow, energy, reason, None)
        object.__setattr__(d, "_make_p", make_p)
        return d

    @property
    def allow(self) -> Array:
        return self._allow

    @property
    def energy(self) -> Array:
        return self._energy

    @property
    def reason(self) -> Array:
        return self._reason

    @property
    def p_value(self) -> Array:
        make_p = self._make_p
        if make_p is not None:
            object.__setattr__(self, "_p", make_p())
            object.__setattr__(self, "_make_p", None)
        return self._p

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a Decision is immutable (use d._replace({name}=...))")

    def __iter__(self):
        return (getattr(self, f) for f in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(getattr(self, f) for f in self._fields[i])
        return getattr(self, self._fields[operator.index(i)])

    def _asdict(self) -> dict[str, Array]:
        """The four fields by name (the p-value computed)."""
        return {f: getattr(self, f) for f in self._fields}

    def _replace(self, **fields: Array) -> Decision:
        """A copy with some fields replaced (an unasked p-value stays unasked)."""
        bad = set(fields) - set(self._fields)
        if bad:
            raise ValueError(f"Decision has no field(s) {sorted(bad)}; fields: {self._fields}")
        parts = {f: fields.get(f, getattr(self, "_" + f)) for f in self._fields[:3]}
        if "p_value" in fields or self._make_p is None:
            return Decision(**parts, p_value=fields.get("p_value", self._p))
        return Decision._lazy(**parts, make_p=self._make_p)

    def __repr__(self) -> str:
        return "Decision(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields) + ")"

    def __eq__(self, other: object) -> bool:
        """As the named tuple compared: field by field, with a Decision or a tuple."""
        if isinstance(other, (Decision, tuple)):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # as the named tuple of arrays: not hashable

    def __reduce__(self):
        """Pickled and copied with its p-value computed."""
        return (Decision, tuple(self))

    def counts(self) -> Array:
        """Number of states per reason code: int ``(len(Reason),)``; jit-friendly."""
        return jnp.bincount(jnp.ravel(self.reason), length=N_REASONS)

    def summary(self) -> dict[str, int]:
        """Counts per reason by name, e.g. ``{"allowed": 97, "above_threshold": 3, ...}``."""
        counts = np.asarray(self.counts())
        return {r.name.lower(): int(counts[r]) for r in Reason}


jax.tree_util.register_pytree_with_keys(
    Decision,
    lambda d: (
        tuple((jax.tree_util.GetAttrKey(f), v) for f, v in zip(d._fields, d, strict=True)),
        None,
    ),
    lambda _, children: Decision(*children),
    flatten_func=lambda d: (tuple(d), None),
)


def conformal_rank(n: int, alpha: float) -> int:
    """The rank ``k = ceil((n + 1)(1 - alpha))`` of the split-conformal threshold.

    The threshold is the ``k``-th smallest of ``n`` calibration scores; a new exchangeable score
    exceeds it with probability ``1 - k / (n + 1) <= alpha``.

    Args:
      n: number of calibration states.
      alpha: the allowed false-block probability, in (0, 1).

    Returns:
      ``k`` in ``1..n``.

    Raises:
      ValueError: if ``alpha`` is not in (0, 1) or ``n`` is too small (``k > n``): at least
        ``ceil(1 / alpha - 1)`` states are needed.

    Example:
      >>> conformal_rank(99, 0.01)
      99
    """
    if not (isinstance(alpha, (int, float, np.floating)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    n = int(n)
    # Rounded to 9 decimals so that e.g. (99 + 1) * (1 - 0.01) = 98.99999999999999 gives 99.
    k = math.ceil(round((n + 1) * (1.0 - float(alpha)), 9))
    if k > n:
        need = math.ceil(round(1.0 / float(alpha) - 1.0, 9))
        raise ValueError(
            f"too few calibration states for alpha={alpha}: got n={n}, the split-conformal "
            f"threshold (the ceil((n+1)(1-alpha)) = {k}-th smallest energy) needs n >= {need}; "
            f"give more held-out states or a larger alpha"
        )
    return max(k, 1)


def _bounds_of(energy_fn: Any, bounds: Any) -> tuple[Array, Array] | None:
    """Resolve the ``bounds`` argument to ``(lo, hi)`` arrays or None (no bounds check)."""
    if bounds is None:
        return None
    if isinstance(bounds, str):
        if bounds != "auto":
            raise ValueError(f"bounds must be 'auto', None or [(lo, hi), ...], got {bounds!r}")
        lo = getattr(energy_fn, "lo", None)
        hi = getattr(energy_fn, "hi", None)
        # A surrogate's lo/hi (normalisation) are not hard bounds: it is meant for unseen regions.
        if lo is None or hi is None or hasattr(energy_fn, "uncertainty"):
            return None
        return jnp.asarray(lo, _float_dtype()), jnp.asarray(hi, _float_dtype())
    arr = np.asarray(bounds, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"bounds must be finite [(lo, hi), ...] per axis, got {bounds!r}")
    if np.any(arr[:, 0] > arr[:, 1]):
        raise ValueError(f"bounds must have lo <= hi on every axis, got {bounds!r}")
    return jnp.asarray(arr[:, 0], _float_dtype()), jnp.asarray(arr[:, 1], _float_dtype())


def _float_dtype():
    """JAX's default float: float64 under ``jax_enable_x64``, float32 otherwise."""
    return jnp.zeros(()).dtype


def _as_scalar(value: Any, name: str) -> Array:
    """A float scalar array from a number, with a clear error for anything else."""
    try:
        arr = jnp.asarray(value, _float_dtype())
    except TypeError as err:
        raise ValueError(f"{name} must be a number, got {value!r}") from err
    if arr.shape != ():
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    return arr


def _is_batched(f: Callable, d: int, dtype) -> bool:
    """Whether ``f`` maps ``(..., d) -> (...)``; else it is taken as ``(d,) -> ()``.

    Probed abstractly (``jax.eval_shape``) on a ``(7, 5, d)`` batch: a per-state function such
    as ``lambda x: x[0] ** 2 + x[1] ** 2`` gives another shape there (or fails).
    """
    try:
        out = jax.eval_shape(f, jax.ShapeDtypeStruct((7, 5, d), dtype))
    except Exception:  # noqa: BLE001 - any failure on a batch means "per state"
        return False
    return getattr(out, "shape", None) == (7, 5)


def _call_energy(fn: Any, x: Array) -> Array:
    """Energy of ``fn`` at ``x`` (..., d) -> (...,), using ``fn.energy`` when it has one.

    A plain function of one state ``(d,) -> ()`` is vmapped over the batch.
    """
    f = getattr(fn, "energy", None)
    if f is None:
        f = fn
        if not _is_batched(fn, x.shape[-1], x.dtype):
            flat = x.reshape((-1, x.shape[-1]))
            e = jax.vmap(fn)(flat)
            e = jnp.asarray(e).reshape(x.shape[:-1])
            return e if jnp.issubdtype(e.dtype, jnp.floating) else e.astype(_float_dtype())
    e = jnp.asarray(f(x))
    return e if jnp.issubdtype(e.dtype, jnp.floating) else e.astype(_float_dtype())


@jax.tree_util.register_pytree_node_class
class Shield:
    """Guards actions with an energy threshold: allow ``x`` iff it is proven safe.

    The rule, per state ``x`` (a row of ``(..., d)``)::

        allow(x) = isfinite(x) and lo <= x <= hi and u(x) <= tol and E(x) <= threshold

    decided with ``jnp.where`` in one jit-compiled batched call, so a NaN/inf or out-of-bounds
    state is blocked whatever ``energy_fn`` returns there (fail closed). ``u`` is the ensemble
    uncertainty of a surrogate (only when a ``tolerance`` is given).

    Args:
      energy_fn: an ``EnergyMap`` (its ``lo``/``hi`` bounds are enforced), a surrogate with
        ``energy(x)`` and ``uncertainty(x)``, or any jax function ``(..., d) -> (...,)`` (a
        function of one state, ``(d,) -> ()``, is recognised and vmapped).
      threshold: the largest allowed energy (inclusive: ``E == threshold`` is allowed).
      tolerance: largest allowed uncertainty ``u(x)``; needs ``energy_fn.uncertainty`` (or a
        ``surrogate``). None: uncertainty is not checked.
      bounds: ``"auto"`` (the map's ``lo``/``hi`` when ``energy_fn`` has them and is not a
        surrogate), None (no bounds check), or ``[(lo, hi), ...]`` per axis.
      surrogate: optional surrogate with ``energy`` and ``uncertainty`` that judges states outside
        the bounds instead of blocking them: there its energy is compared with the threshold and
        its uncertainty with ``tolerance`` (required then).
      scores: sorted calibration scores (set by :meth:`calibrate`; enables p-values).
      alpha: the calibration level (metadata, set by :meth:`calibrate`).
      provenance: a JSON-able dict saved with the shield.

    Example:
      >>> import jax.numpy as jnp, energy
      >>> sh = energy.Shield(lambda x: jnp.sum(x**2, -1), threshold=1.0)
      >>> sh(jnp.array([[0.5, 0.5], [1.0, 1.0], [jnp.nan, 0.0]])).reason.tolist()
      [0, 1, 3]
    """

    def __init__(
        self,
        energy_fn: Callable[[Array], Array],
        threshold: ArrayLike,
        *,
        tolerance: ArrayLike | None = None,
        bounds: Any = "auto",
        surrogate: Any = None,
        scores: ArrayLike | None = None,
        alpha: float | None = None,
        provenance: dict | None = None,
    ):
        if not callable(energy_fn) and not hasattr(energy_fn, "energy"):
            raise ValueError(f"energy_fn must be callable, got {type(energy_fn).__name__}")
        self.energy_fn = energy_fn
        self.threshold = _as_scalar(threshold, "threshold")
        if bool(jnp.isnan(self.threshold)):
            raise ValueError("threshold is NaN: a shield needs a number to compare energies with")
        uncertain = surrogate if surrogate is not None else energy_fn
        if tolerance is not None:
            if not hasattr(uncertain, "uncertainty"):
                raise ValueError(
                    f"tolerance={tolerance!r} needs a surrogate with uncertainty(x); "
                    f"{type(uncertain).__name__} has none"
                )
            tolerance = _as_scalar(tolerance, "tolerance")
        if surrogate is not None:
            if not (hasattr(surrogate, "energy") and hasattr(surrogate, "uncertainty")):
                raise ValueError("surrogate must have energy(x) and uncertainty(x)")
            if tolerance is None:
                raise ValueError(
                    "a surrogate judging states outside the map needs a tolerance on its "
                    "uncertainty: Shield(..., surrogate=s, tolerance=tol)"
                )
        self.tolerance = tolerance
        self.surrogate = surrogate
        lohi = _bounds_of(energy_fn, bounds)
        if surrogate is not None and lohi is None:
            raise ValueError("a surrogate fallback needs bounds: it judges states outside them")
        self.lo, self.hi = (None, None) if lohi is None else lohi
        if scores is not None:
            scores = jnp.sort(jnp.asarray(scores, _float_dtype()).ravel())
            if bool(jnp.isnan(scores).any()):
                raise ValueError("calibration scores must not be NaN")
        self.scores = scores
        self.alpha = None if alpha is None else float(alpha)
        self.provenance = dict(provenance or {})
        # Which of energy_fn / surrogate are array pytrees (leaves) or static, decided once.
        self._parts = (*_split(energy_fn), *_split(surrogate))

    # -- pytree ---------------------------------------------------------------------------
    def tree_flatten(self):
        """Arrays (and a pytree energy_fn such as an EnergyMap) are leaves; the rest static."""
        fn_dyn, fn_static, sur_dyn, sur_static = self._parts
        children = (
            fn_dyn,
            self.threshold,
            self.tolerance,
            self.lo,
            self.hi,
            sur_dyn,
            self.scores,
        )
        return children, (fn_static, sur_static, self._meta())

    def _meta(self) -> _Meta:
        """Alpha and provenance as aux data; made once per (alpha, provenance) objects."""
        if self.alpha is None and not self.provenance:
            return _NO_META
        meta = self.__dict__.get("_meta_cache")
        if meta is None or meta.alpha is not self.alpha or meta.provenance is not self.provenance:
            meta = self._meta_cache = _Meta(self.alpha, self.provenance)
        return meta

    @classmethod
    def tree_unflatten(cls, aux, children):
        """Rebuild without re-validating (children may be tracers)."""
        obj = object.__new__(cls)
        fn_dyn, obj.threshold, obj.tolerance, obj.lo, obj.hi, sur_dyn, obj.scores = children
        fn_static, sur_static, meta = aux
        obj.energy_fn = fn_dyn if fn_static is None else fn_static.value
        obj.surrogate = sur_dyn if sur_static is None else sur_static.value
        obj.alpha, obj.provenance = meta.alpha, meta.provenance
        obj._meta_cache = meta
        obj._parts = (fn_dyn, fn_static, sur_dyn, sur_static)
        return obj

    def _bare(self) -> Shield:
        """The same shield without alpha, provenance and the metadata of its energy function:
        what the internal jitted decisions take, so shields that differ only in metadata share
        compiled code (a decision does not depend on it)."""
        # What a decision depends on; the bare shield is made again only when one of them is
        # replaced (`calibrate` assigns a new threshold to a copy, for instance).
        key = (self._parts, self.threshold, self.tolerance, self.lo, self.hi, self.scores)
        cached = self.__dict__.get("_bare_cache")
        if cached is not None and all(map(operator.is_, cached[0], key)):
            return cached[1]
        obj = object.__new__(type(self))
        obj.__dict__.update(self.__dict__)
        obj.__dict__.pop("_bare_cache", None)
        fn_dyn, fn_static, sur_dyn, sur_static = self._parts
        if fn_dyn is not None:
            fn_dyn = obj.energy_fn = _bare(fn_dyn)
        if sur_dyn is not None:
            sur_dyn = obj.surrogate = _bare(sur_dyn)
        obj._parts = (fn_dyn, fn_static, sur_dyn, sur_static)
        obj.alpha, obj.provenance = None, {}
        self._bare_cache = (key, obj)
        return obj

    # -- properties -----------------------------------------------------------------------
    @property
    def n_calibration(self) -> int | None:
        """Number of calibration states (None for an explicit threshold)."""
        return None if self.scores is None else int(self.scores.shape[0])

    @property
    def ndim(self) -> int | None:
        """Dimension ``d`` of a state when known (from the bounds or the map)."""
        if self.lo is not None:
            return self.lo.shape[0]
        nd = getattr(self.energy_fn, "ndim", None)
        return int(nd) if isinstance(nd, (int, np.integer)) else None

    def __repr__(self) -> str:
        t = float(self.threshold) if not isinstance(self.threshold, jax.core.Tracer) else "?"
        cal = "" if self.scores is None else f", alpha={self.alpha}, n={self.n_calibration}"
        return f"Shield({type(self.energy_fn).__name__}, threshold={t}{cal})"

    # -- decisions ------------------------------------------------------------------------
    def __call__(self, x: ArrayLike) -> Decision:
        """Decide every state of ``x`` (..., d): one jit-compiled batched call.

        Args:
          x: states, shape ``(..., d)``.

        Returns:
          A :class:`Decision` with ``allow``, ``energy``, ``reason``, ``p_value`` of shape
          ``(...)``. For a batch of at least ``_PARTS_MIN_STATES`` (32768) states outside a
          trace, the p-value is computed when it is first asked for.
        """
        x = self._check_input(x)
        bare, table = self._bare(), self._table()
        if not self._decides_in_parts(x):
            return _decide_jit(bare, x, table)
        # Two programs: the energy, then allow and reason from it (in one program XLA on CPU
        # computes the interpolation again in each of those outputs); the p-value when asked.
        energy = _energy_jit(bare, x)
        allow, reason = _reason_jit(bare, x, energy)
        return Decision._lazy(
            allow, energy, reason, functools.partial(_p_jit, bare.scores, energy, reason, table)
        )

    def _decides_in_parts(self, x: Array) -> bool:
        """Whether ``self(x)`` runs as separate programs with a p-value computed when asked
        for: a large batch of concrete states, no surrogate or tolerance, a shield that is not
        traced (inside a trace the whole decision is traced and XLA drops what is not used;
        the parts would decide the same there, in one program all the same)."""
        tracer = jax.core.Tracer
        return (
            self.surrogate is None
            and self.tolerance is None
            and math.prod(x.shape[:-1]) >= _PARTS_MIN_STATES
            and not isinstance(x, tracer)
            and not isinstance(self.threshold, tracer)
            and not isinstance(self.scores, tracer)
            and not isinstance(getattr(self.energy_fn, "values", None), tracer)
        )

    def _table(self) -> _PTable | None:
        """The p-value search table of this shield's scores (made once per scores array);
        None without scores or inside a trace (then p-values use a binary search)."""
        scores = self.scores
        if scores is None or isinstance(scores, jax.core.Tracer):
            return None
        cached = self.__dict__.get("_table_cache")
        if cached is None or cached[0] is not scores:
            cached = self._table_cache = (scores, _p_table(np.asarray(scores)))
        return cached[1]

    def _check_input(self, x: ArrayLike) -> Array:
        """A float array with the right trailing dimension (static checks, trace-safe).

        NumPy input stays NumPy: the jitted call transfers it (cheaper than ``jnp.asarray``).
        """
        if not isinstance(x, (jax.Array, np.ndarray)):
            x = np.asarray(x)
        kind = x.dtype.kind
        if kind != "f":
            if kind not in "iub":
                raise ValueError(f"states must be numeric, got dtype {x.dtype}")
            x = x.astype(np.float32)
        if x.ndim == 0:
            raise ValueError("states must have shape (..., d), got a scalar")
        nd = self.ndim
        if nd is not None and x.shape[-1] != nd:
            raise ValueError(f"states have d={x.shape[-1]} coordinates, the shield expects d={nd}")
        return x

    def _masks(self, x: Array) -> tuple[list[Array], Array, Array]:
        """The columns of ``x``, and where a state is finite and where it is inside the bounds.

        Per-coordinate checks run on columns (``x[..., j]``): XLA on CPU vectorises a reduction
        over a short minor axis poorly.
        """
        cols = [x[..., j] for j in range(x.shape[-1])]
        finite = jnp.isfinite(cols[0])
        for c in cols[1:]:
            finite = finite & jnp.isfinite(c)
        inside = finite
        if self.lo is not None:
            for j, c in enumerate(cols):
                inside = inside & (c >= self.lo[j]) & (c <= self.hi[j])
        return cols, finite, inside

    def _safe(self, x: Array, cols: list[Array], finite: Array) -> Array:
        """The states the energy is evaluated at: ``x``, or for a function that is not a map,
        a stand-in in the rows that are not finite."""
        if isinstance(self.energy_fn, EnergyMap) and self.surrogate is None:
            # A map's energy is row by row (a NaN row gives a NaN energy there, nothing else):
            # no stand-in needed (it would cost ~15% of the call).
            return x
        # A safe stand-in for rows with NaN/inf, so that they cannot poison other rows of a
        # function that mixes them (a batch statistic, a NaN-propagating reduction).
        fill = [
            jnp.zeros((), c.dtype) if self.lo is None else self.lo[j] for j, c in enumerate(cols)
        ]
        return jnp.stack(
            [jnp.where(finite, c, f.astype(c.dtype)) for c, f in zip(cols, fill, strict=True)],
            axis=-1,
        )

    def _decide(self, x: Array, table: _PTable | None = None, allow_only: bool = False) -> Decision:
        """The pure decision rule (traced inside jit); ``table``: see :meth:`_p_value`;
        ``allow_only``: only ``allow`` is used (it is then computed without ``reason``)."""
        cols, finite, inside = self._masks(x)
        safe = self._safe(x, cols, finite)
        e = jnp.broadcast_to(_call_energy(self.energy_fn, safe), finite.shape)
        judged_inside = inside
        if self.surrogate is not None:
            e = jnp.where(inside, e, _call_energy(self.surrogate, safe))
            u = jnp.where(inside, 0.0, jnp.asarray(self.surrogate.uncertainty(safe), e.dtype))
            judged_inside = jnp.ones_like(inside)
        elif self.tolerance is not None:
            u = jnp.asarray(self.energy_fn.uncertainty(safe), e.dtype)
        else:
            u = None
        bad_value = ~jnp.isfinite(e) if u is None else ~(jnp.isfinite(e) & jnp.isfinite(u))
        uncertain = jnp.zeros_like(inside) if u is None else u > self.tolerance
        above = ~(e <= self.threshold)
        reason = jnp.where(
            ~finite,
            Reason.NOT_FINITE,
            jnp.where(
                ~judged_inside,
                Reason.OUT_OF_BOUNDS,
                jnp.where(
                    bad_value,
                    Reason.NOT_FINITE,
                    jnp.where(
                        uncertain,
                        Reason.TOO_UNCERTAIN,
                        jnp.where(above, Reason.ABOVE_THRESHOLD, Reason.ALLOWED),
                    ),
                ),
            ),
        ).astype(jnp.int32)
        if allow_only:
            # Equal to reason == ALLOWED, written directly so that an allow-only call skips
            # reason.
            allow = finite & judged_inside & ~bad_value & ~uncertain & ~above
        else:
            # From reason: one cheap pass over it instead of another pass over the energy's
            # inputs (XLA on CPU recomputes the interpolation in every consumer).
            allow = reason == Reason.ALLOWED
        energy = jnp.where(finite, e, jnp.inf)
        p_value = _p_of(self.scores, energy, reason, table)
        return Decision(allow=allow, energy=energy, reason=reason, p_value=p_value)

    def _energy_only(self, x: Array) -> Array:
        """``_decide(x).energy`` alone, for a shield without surrogate or tolerance."""
        cols, finite, _ = self._masks(x)
        e = _call_energy(self.energy_fn, self._safe(x, cols, finite))
        return jnp.where(finite, jnp.broadcast_to(e, finite.shape), jnp.inf)

    def _reason_of(self, x: Array, energy: Array) -> tuple[Array, Array]:
        """``(allow, reason)`` of ``_decide(x)`` from its ``energy`` (for a shield without
        surrogate or tolerance): no pass over the energy function's work."""
        _, finite, inside = self._masks(x)
        reason = jnp.where(
            ~finite,
            Reason.NOT_FINITE,
            jnp.where(
                ~inside,
                Reason.OUT_OF_BOUNDS,
                jnp.where(
                    ~jnp.isfinite(energy),
                    Reason.NOT_FINITE,
                    jnp.where(~(energy <= self.threshold), Reason.ABOVE_THRESHOLD, Reason.ALLOWED),
                ),
            ),
        ).astype(jnp.int32)
        return reason == Reason.ALLOWED, reason

    def _p_value(self, score: Array, table: _PTable | None = None) -> Array:
        """Conformal p-value of scores ``score``: :func:`_p_of_score`."""
        return _p_of_score(self.scores, score, table)

    def allow(self, x: ArrayLike) -> Array:
        """Just the booleans, ``self(x).allow``, compiled without the p-values (faster)."""
        return _allow_jit(self._bare(), self._check_input(x))

    def transition(self, x0: ArrayLike, x1: ArrayLike, n_points: int = 33) -> Decision:
        """Check moves ``x0 -> x1`` along the straight segment, not only their end points.

        The move is allowed iff every one of ``n_points`` equally spaced points
        ``x0 + t (x1 - x0)``, ``t = 0, 1/(n_points-1), ..., 1`` is allowed, so a move that
        crosses a barrier is blocked even when both ends are safe. A barrier narrower than the
        point spacing ``|x1 - x0| / (n_points - 1)`` can be missed: for an EnergyMap take
        ``n_points > max_j |x1_j - x0_j| / spacing_j + 1`` to visit every grid cell.

        Args:
          x0: current states ``(..., d)``.
          x1: proposed next states ``(..., d)`` (broadcast against ``x0``).
          n_points: points on each segment, ends included (>= 2).

        Returns:
          A :class:`Decision` per move: ``energy`` is the highest energy on the segment,
          ``reason`` the reason of the first blocked point, ``p_value`` the smallest.

        Example:
          >>> d = sh.transition(current, proposed)  # doctest: +SKIP
        """
        if int(n_points) < 2:
            raise ValueError(f"n_points must be >= 2 (both ends), got {n_points}")
        x0 = self._check_input(x0)
        x1 = self._check_input(x1)
        return _transition_jit(self._bare(), x0, x1, int(n_points), self._table())

    def filter(self, x: ArrayLike) -> tuple[np.ndarray, Decision]:
        """Keep only the allowed states (host side: the result's length depends on the data).

        Args:
          x: states ``(n, d)``, e.g. ``langevin`` result positions.

        Returns:
          ``(x[allow], decision)`` with ``x[allow]`` a NumPy array ``(m, d)``.
        """
        d = self(x)
        keep = np.asarray(d.allow)
        return np.asarray(x)[keep], d

    # -- calibration ----------------------------------------------------------------------
    @classmethod
    def calibrate(
        cls,
        energy_fn: Callable[[Array], Array],
        states: ArrayLike,
        alpha: float = 0.01,
        *,
        tolerance: ArrayLike | None = None,
        bounds: Any = "auto",
        surrogate: Any = None,
        provenance: dict | None = None,
    ) -> Shield:
        """A shield whose threshold is the split-conformal quantile of held-out energies.

        With scores ``s_i = E(x_i)`` of ``n`` held-out in-distribution states (``+inf`` for a
        state the shield blocks for another reason: not finite, out of bounds, too uncertain),
        the threshold is the ``k``-th smallest score, ``k = ceil((n + 1)(1 - alpha))``. For a new
        state exchangeable with the calibration states,

            P(blocked) = P(s(x) > s_(k)) <= 1 - k / (n + 1) <= alpha,

        averaged over the calibration draw (for continuous energies it is also
        ``>= alpha - 1/(n+1)``). What it does not cover: states from another distribution (it
        bounds false blocks, not missed dangers), any one calibration draw (the rate given the
        calibration set is random, Beta(n + 1 - k, k)), or trajectories (a per-state filter:
        use :meth:`transition` for moves). The map must not have been built from these states.

        Args:
          energy_fn: as for :class:`Shield`.
          states: held-out in-distribution states ``(n, d)``.
          alpha: the allowed false-block probability, in (0, 1).
          tolerance, bounds, surrogate, provenance: as for :class:`Shield`.

        Returns:
          A calibrated :class:`Shield` (with ``scores``, so decisions carry p-values).

        Raises:
          ValueError: too few states for ``alpha`` (needs ``n >= ceil(1/alpha - 1)``), bad
            shapes, or a quantile that falls on blocked states (threshold would be infinite).

        Example:
          >>> sh = energy.Shield.calibrate(m, held_out, alpha=0.05)  # doctest: +SKIP
        """
        x = np.asarray(states)
        if x.dtype.kind not in "fiub":
            raise ValueError(f"calibration states must be numeric, got dtype {x.dtype}")
        if x.ndim != 2:
            raise ValueError(f"calibration states must have shape (n, d), got {x.shape}")
        n = x.shape[0]
        k = conformal_rank(n, alpha)
        probe = cls(
            energy_fn,
            threshold=jnp.inf,
            tolerance=tolerance,
            bounds=bounds,
            surrogate=surrogate,
        )
        d = probe(x)
        reason = np.asarray(d.reason)
        energy = np.asarray(d.energy)
        scores = np.where(reason == Reason.ALLOWED, energy, np.inf).astype(energy.dtype)
        scores.sort()
        threshold = scores[k - 1]
        counts = {r.name.lower(): int(np.sum(reason == r)) for r in Reason}
        if not np.isfinite(threshold):
            raise ValueError(
                f"calibration: {n - counts['allowed']} of {n} states are blocked whatever the "
                f"threshold ({counts}); the {k}-th smallest score is infinite for alpha={alpha}. "
                f"Check that the states are in-distribution and inside the map's bounds"
            )
        prov = dict(provenance or {})
        prov["calibration"] = {
            "n": int(n),
            "alpha": float(alpha),
            "rank": int(k),
            "threshold": float(threshold),
            "blocked_per_reason": counts,
        }
        # The probe with the calibration added.
        sh = copy.copy(probe)
        sh.threshold = _as_scalar(threshold, "threshold")
        sh.scores = jnp.asarray(scores)
        sh.alpha = float(alpha)
        sh.provenance = prov
        return sh

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str) -> str:
        """Write the map and its calibration to one ``.npz`` file, atomically.

        The file is the map's container (its energies and metadata, checksum included) with the
        format ``groundstate.shield``, the sorted calibration scores (``shield_scores``) and a
        ``shield`` metadata entry (threshold, alpha, n, rank, bounds, provenance); the file's
        checksum covers every field and array. Only shields over an ``EnergyMap`` without a
        surrogate can be saved (a surrogate is an orbax checkpoint directory: save it with
        ``s.save``), and a shield with scores and alpha only when its threshold is the one they
        give (as :meth:`calibrate` sets it), since :meth:`load` derives it again.

        Args:
          path: the file to write.

        Returns:
          The path written.

        Example:
          >>> sh.save("shield.npz"); sh2 = energy.Shield.load("shield.npz")  # doctest: +SKIP
        """
        m = self.energy_fn
        if not isinstance(m, EnergyMap):
            raise ValueError(
                f"only a shield over an EnergyMap can be saved, this one guards a "
                f"{type(m).__name__}: keep its threshold ({float(self.threshold)}) instead"
            )
        if self.surrogate is not None or self.tolerance is not None:
            raise ValueError("a shield with a surrogate/tolerance cannot be saved in one .npz file")
        meta = m.metadata()
        meta["format"] = SHIELD_FORMAT
        bounds = None
        if self.lo is not None:
            bounds = [[float(a), float(b)] for a, b in zip(self.lo, self.hi, strict=True)]
        shield = {
            "threshold": float(self.threshold),
            "alpha": self.alpha,
            "n": self.n_calibration,
            "rank": None,
            "bounds": bounds,
            "provenance": self.provenance,
        }
        arrays = {"energies": np.asarray(m.values)}
        if self.scores is not None:
            arrays["shield_scores"] = np.asarray(self.scores)
            if self.alpha is not None:
                k = conformal_rank(self.n_calibration, self.alpha)
                derived = float(arrays["shield_scores"][k - 1])
                if float(self.threshold) != derived:
                    raise ValueError(
                        f"this shield's threshold {float(self.threshold)!r} is not the one its "
                        f"scores give at alpha={self.alpha} ({derived!r}, rank {k}), and loading "
                        f"derives it again: save a shield made by Shield.calibrate, or one "
                        f"without alpha (alpha=None) for an explicit threshold"
                    )
                shield["rank"] = k
        meta["shield"] = shield
        # write_npz_atomic covers every field (shield.threshold, .alpha, .bounds, the map's) and
        # every array (energies, shield_scores) by the checksum.
        return str(_io.write_npz_atomic(path, arrays, meta))

    @classmethod
    def load(cls, path: str) -> Shield:
        """Load a shield written by :meth:`save`: the map and its calibration, validated.

        Every field that decides (threshold, alpha, rank, bounds, the map's energies, bounds and
        method, the calibration scores) is under the file's checksum, and a calibrated shield's
        threshold is derived again from its scores and alpha (the ``ceil((n+1)(1-alpha))``-th
        smallest score) and must match the stored one.

        Raises:
          MapFileError: naming the file and what is wrong (format, the field whose checksum does
            not match, a threshold that is not the one its scores and alpha give, malformed
            calibration).
        """
        err = _io.MapFileError
        arrays, meta = _io.read_npz(path, SHIELD_FORMAT)
        m = map_from_arrays(path, arrays, meta, extra=("shield_scores",))
        sh = meta.get("shield")
        if not isinstance(sh, dict):
            raise err(f"{path}: no 'shield' entry in the metadata")
        t = sh.get("threshold")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or math.isnan(t):
            raise err(f"{path}: shield threshold must be a number, got {t!r}")
        scores = arrays.get("shield_scores")
        n = sh.get("n")
        alpha = sh.get("alpha")
        if alpha is not None and not (
            isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 < alpha < 1
        ):
            raise err(f"{path}: shield alpha must be in (0, 1), got {alpha!r}")
        if scores is not None:
            if scores.ndim != 1 or scores.dtype.kind != "f" or np.isnan(scores).any():
                raise err(f"{path}: shield_scores must be a 1-D float array without NaN")
            if n != scores.shape[0]:
                raise err(f"{path}: shield n={n!r} but {scores.shape[0]} calibration scores")
            if np.any(np.diff(scores) < 0):
                raise err(f"{path}: shield_scores are not sorted")
            if alpha is not None:
                _check_threshold(path, t, scores, alpha, sh.get("rank"))
        elif n is not None or sh.get("rank") is not None:
            raise err(f"{path}: shield n={n!r} but no shield_scores array")
        bounds = sh.get("bounds")
        try:
            return cls(
                m,
                threshold=t,
                bounds=bounds,
                scores=scores,
                alpha=alpha,
                provenance=sh.get("provenance") or {},
            )
        except ValueError as exc:
            raise err(f"{path}: {exc}") from exc


def _check_threshold(path, threshold: float, scores: np.ndarray, alpha: float, rank) -> None:
    """A loaded threshold must be the ``conformal_rank(n, alpha)``-th smallest stored score."""
    err = _io.MapFileError
    try:
        k = conformal_rank(scores.shape[0], alpha)
    except ValueError as exc:
        raise err(f"{path}: shield alpha {alpha} and {scores.shape[0]} scores: {exc}") from exc
    if rank != k:
        raise err(f"{path}: shield rank {rank!r} is not ceil((n+1)(1-alpha)) = {k}")
    derived = float(scores[k - 1])
    if threshold != derived:
        raise err(
            f"{path}: shield threshold {threshold!r} is not the one its calibration gives "
            f"({derived!r}, the {k}-th smallest of {scores.shape[0]} scores at alpha={alpha})"
        )


_KEY_DTYPES = {np.dtype(np.float32): np.dtype(np.uint32), np.dtype(np.float64): np.dtype(np.uint64)}
_MAX_BUCKETS = 1 << 16


def _key_dtype(dtype) -> np.dtype | None:
    """The unsigned integer type of the order keys of a float dtype (None: no table for it)."""
    return _KEY_DTYPES.get(np.dtype(dtype))


def _order_keys(x: Array) -> Array:
    """Unsigned integers in the order ``jnp.searchsorted`` compares floats (traced).

    -0.0 and 0.0 get the same key, NaN the largest; otherwise ``a < b`` iff ``key(a) < key(b)``.
    """
    kd = _key_dtype(x.dtype)
    top = kd.type(1 << (8 * kd.itemsize - 1))
    x = jnp.where(x == 0, jnp.zeros((), x.dtype), x)
    x = jnp.where(jnp.isnan(x), jnp.full((), jnp.nan, x.dtype), x)
    bits = jax.lax.bitcast_convert_type(x, kd)
    return jnp.where(bits >= top, ~bits, bits | top)


_order_keys_jit = jax.jit(_order_keys)


@jax.tree_util.register_pytree_node_class
class _PTable:
    """A bucketed search table over sorted calibration scores: ``#{s_i < q}`` exactly.

    ``keys`` are the order keys (:func:`_order_keys`) of the scores, sorted (all of them, or the
    distinct ones when ties would make a bucket full; then ``below[j]`` is the number of scores
    below the ``j``-th distinct one), followed by sentinels larger than any query's key. They
    are split into buckets by ``b(k) = min((max(k, base) - base) >> shift, n_buckets - 1)``, a
    non-decreasing function of the key, and ``start[b]`` is the number of keys in the buckets
    before ``b``. A key in an earlier bucket than the query's is smaller than its key, one in a
    later bucket larger, so the number of keys below the query is ``start[b(q)]`` plus a
    branchless search of ``steps`` halvings in the window of ``2**steps - 1`` keys from there
    (``steps``: the bits of the fullest bucket's size; keys past the bucket are larger).
    """

    def __init__(self, keys, start, below, base, shift, steps: int):
        self.keys, self.start, self.below, self.base, self.shift = keys, start, below, base, shift
        self.steps = steps

    def tree_flatten(self):
        return (self.keys, self.start, self.below, self.base, self.shift), self.steps

    @classmethod
    def tree_unflatten(cls, steps, children):
        return cls(*children, steps)

    def count_below(self, score: Array) -> Array:
        """``#{s_i < score}`` (int32, shape of ``score``), as ``searchsorted(side="left")``."""
        k = _order_keys(score)
        nb = self.start.shape[0]
        b = jnp.minimum((jnp.maximum(k, self.base) - self.base) >> self.shift, nb - 1)
        pos = _take(self.start, b.astype(jnp.int32))

        def halve(i, pos):
            step = jnp.left_shift(jnp.int32(1), self.steps - 1 - i)
            return jnp.where(_take(self.keys, pos + (step - 1)) < k, pos + step, pos)

        # A loop, not unrolled: on CPU each halving is then its own pass over the batch (one
        # gather each); unrolled, XLA fuses them into one loop that runs ~1.5x slower.
        pos = jax.lax.fori_loop(0, self.steps, halve, pos)
        return pos if self.below is None else _take(self.below, pos)


_TAKE_DIMS = jax.lax.GatherDimensionNumbers(
    offset_dims=(), collapsed_slice_dims=(0,), start_index_map=(0,)
)


def _take(table: Array, idx: Array) -> Array:
    """``table[idx]`` for indices known to be in bounds (no clamping or wrapping).

    A bare ``lax.gather``: ``table.at[idx].get(mode="promise_in_bounds")`` still adds the
    select that wraps negative indices (measured ~15% of a full decision on CPU).
    """
    return jax.lax.gather(
        table,
        idx[..., None],
        _TAKE_DIMS,
        (1,),
        mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS,
    )


def _p_table(scores: np.ndarray) -> _PTable | None:
    """The :class:`_PTable` of sorted, NaN-free calibration scores (None for other dtypes).

    Of the bucket widths (powers of two in key units) with at most ``_MAX_BUCKETS`` buckets,
    the one with the fewest gathers per query (search steps, plus one through ``below`` when
    the keys are the distinct ones), the coarsest of those.
    """
    kd = _key_dtype(scores.dtype)
    if kd is None or scores.ndim != 1 or scores.size == 0:
        return None
    n = scores.shape[0]
    # Keys made on the device, as the queries' are: its comparisons (a denormal may count as
    # 0.0 there) are the ones jnp.searchsorted makes.
    all_keys = np.asarray(_order_keys_jit(jnp.asarray(scores)))
    keys = np.sort(all_keys)
    uniq, first = np.unique(keys, return_index=True)
    finite = np.unique(all_keys[np.isfinite(scores)])
    ref = finite if finite.size else uniq
    base, span = ref[0], int(ref[-1] - ref[0])
    best = None
    for distinct, kk in ((False, keys), (True, uniq)):
        if distinct and uniq.size == n:
            break  # no ties: the distinct keys are the keys, and cost one gather more
        cap = max(64, min(_MAX_BUCKETS, 4 * kk.size))
        for shift in range(8 * kd.itemsize + 1):
            nb = (span >> shift) + 2  # the finite range, and one bucket for everything above
            if nb > cap:
                continue
            b = np.minimum((np.maximum(kk, base) - base) >> kd.type(shift), nb - 1)
            occ = np.bincount(b.astype(np.int64), minlength=nb)
            steps = int(occ.max()).bit_length()
            cost = (steps + distinct, nb)
            if best is not None and cost[0] > best[0][0]:
                break  # coarser buckets merge finer ones (a heuristic: any choice is exact)
            if best is None or cost < best[0]:
                best = (cost, distinct, kk, shift, steps, occ)
    _, distinct, kk, shift, steps, occ = best
    start = np.concatenate([[0], np.cumsum(occ)[:-1]]).astype(np.int32)
    pad = np.full(max(1 << steps, 1), np.iinfo(kd).max, kd)
    return _PTable(
        keys=jnp.asarray(np.concatenate([kk, pad])),
        start=jnp.asarray(start),
        below=jnp.asarray(np.append(first, n).astype(np.int32)) if distinct else None,
        base=jnp.asarray(base, kd),
        shift=jnp.asarray(shift, kd),
        steps=steps,
    )


class _Static:
    """Hashable-by-identity wrapper: a non-array object (a plain function) in aux data."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Static) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


def _split(obj: Any) -> tuple[Any, _Static | None]:
    """``(obj, None)`` when obj is a pytree of arrays (an EnergyMap), else ``(None, static)``."""
    if obj is None:
        return None, None
    leaves = jax.tree_util.tree_leaves(obj)
    if leaves and all(isinstance(v, (jax.Array, np.ndarray, np.generic)) for v in leaves):
        return obj, None
    return None, _Static(obj)


def _bare(obj: Any) -> Any:
    """``obj._bare()`` for objects that have one (EnergyMap, Surrogate), else obj itself."""
    bare = getattr(obj, "_bare", None)
    return bare() if callable(bare) else obj


class _Meta:
    """Alpha and provenance in aux data, compared and hashed by value (canonical JSON), so a
    shield that leaves a jitted function carries its own. The internal decisions take
    `Shield._bare`, so shields that differ only in these still share compiled code."""

    __slots__ = ("_key", "alpha", "provenance")

    def __init__(self, alpha: float | None, provenance: dict):
        self.alpha = alpha
        self.provenance = provenance
        self._key = json.dumps([alpha, provenance], sort_keys=True, default=repr)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Meta) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)


_NO_META = _Meta(None, {})


@jax.jit
def _decide_jit(shield: Shield, x: Array, table: _PTable | None = None) -> Decision:
    """Jitted decision rule over a shield pytree (and its p-value table)."""
    return shield._decide(x, table)


_PARTS_MIN_STATES = 1 << 15
"""Batches of at least this many states are decided in parts (:meth:`Shield._decides_in_parts`);
smaller ones in one program, where one dispatch costs less than the work saved."""


@jax.jit
def _energy_jit(shield: Shield, x: Array) -> Array:
    """The decision's energy alone (:meth:`Shield._energy_only`)."""
    return shield._energy_only(x)


@jax.jit
def _reason_jit(shield: Shield, x: Array, energy: Array) -> tuple[Array, Array]:
    """The decision's ``(allow, reason)`` from its energy (:meth:`Shield._reason_of`)."""
    return shield._reason_of(x, energy)


def _p_of(scores: Array | None, energy: Array, reason: Array, table: _PTable | None) -> Array:
    """The decision's p-values from its energy and reason: the conformal score is the energy,
    +inf for every block that is not an energy block (every code above ABOVE_THRESHOLD)."""
    score = jnp.where(reason > Reason.ABOVE_THRESHOLD, jnp.inf, energy)
    return _p_of_score(scores, score, table)


_p_jit = jax.jit(_p_of)


def _p_of_score(scores: Array | None, score: Array, table: _PTable | None = None) -> Array:
    """Conformal p-value ``(1 + #{s_i >= score}) / (n + 1)`` against sorted ``scores``; NaN
    without scores.

    ``#{s_i < score}`` comes from ``table`` (a bucketed search, :func:`_p_table`) when one is
    given for this score dtype, else from a binary search in the sorted scores; both order
    floats as ``jnp.searchsorted`` does (-0.0 == 0.0), so they give the same counts.
    """
    if scores is None:
        return jnp.full(score.shape, jnp.nan, score.dtype)
    n = scores.shape[0]
    if table is not None and table.keys.dtype == _key_dtype(score.dtype):
        below = table.count_below(score)
    else:
        below = jnp.searchsorted(scores, score.ravel(), side="left").reshape(score.shape)
    return ((n - below + 1) / (n + 1)).astype(score.dtype)


@jax.jit
def _allow_jit(shield: Shield, x: Array) -> Array:
    """Jitted allow-only rule: XLA drops the unused energy/p-value outputs."""
    return shield._decide(x, allow_only=True).allow


def _transition_impl(
    shield: Shield, x0: Array, x1: Array, n_points: int, table: _PTable | None = None
) -> Decision:
    """Decide moves by the decisions at ``n_points`` points on each segment."""
    x0, x1 = jnp.broadcast_arrays(x0, x1)
    t = jnp.linspace(0.0, 1.0, n_points, dtype=x0.dtype)[:, None]
    pts = x0[..., None, :] + t * (x1 - x0)[..., None, :]  # (..., n_points, d)
    # Exact end points (x0 + 1 * (x1 - x0) can differ from x1 in the last bit).
    pts = pts.at[..., -1, :].set(x1)
    d = shield._decide(pts, table)
    allow = jnp.all(d.allow, axis=-1)
    first = jnp.argmax(~d.allow, axis=-1)
    reason = jnp.take_along_axis(d.reason, first[..., None], axis=-1)[..., 0]
    reason = jnp.where(allow, Reason.ALLOWED, reason).astype(jnp.int32)
    return Decision(
        allow=allow,
        energy=jnp.max(d.energy, axis=-1),
        reason=reason,
        p_value=jnp.min(d.p_value, axis=-1),
    )


_transition_jit = jax.jit(_transition_impl, static_argnums=3)


def _json_number(v: float) -> float | str:
    """A float for JSON: non-finite values as the strings "nan", "inf", "-inf"."""
    v = float(v)
    return v if math.isfinite(v) else str(v)


class ShieldLog:
    """Counters per reason across calls, and an optional JSON-lines audit log of blocked states.

    Host side (outside jit): each :meth:`record` adds the decision's counts per reason and, with
    a ``path``, appends one JSON object per blocked state
    ``{"time", "state", "reason", "reason_code", "energy", "p_value", ...context}`` (non-finite
    numbers as the strings ``"nan"``, ``"inf"``).

    Args:
      path: the audit log file (appended to), or None for counters only.

    Example:
      >>> log = ShieldLog("blocked.jsonl")  # doctest: +SKIP
      >>> d = log.record(x, sh(x), step=17)  # doctest: +SKIP
      >>> log.counts  # doctest: +SKIP
      {'allowed': 95, 'above_threshold': 4, 'out_of_bounds': 1, ...}
    """

    def __init__(self, path: str | None = None):
        self.path = path
        self._counts = np.zeros(N_REASONS, dtype=np.int64)

    @property
    def counts(self) -> dict[str, int]:
        """States seen per reason name since the log was made."""
        return {r.name.lower(): int(self._counts[r]) for r in Reason}

    @property
    def total(self) -> int:
        """States seen."""
        return int(self._counts.sum())

    def record(self, x: ArrayLike, decision: Decision, **context: Any) -> Decision:
        """Count ``decision`` and log its blocked states; returns ``decision`` unchanged."""
        import json
        import time

        reason = np.asarray(decision.reason).ravel()
        self._counts += np.bincount(reason, minlength=N_REASONS)[:N_REASONS]
        if self.path is None:
            return decision
        blocked = np.flatnonzero(~np.asarray(decision.allow).ravel())
        if blocked.size == 0:
            return decision
        xs = np.asarray(x, dtype=np.float64)
        xs = xs.reshape(-1, xs.shape[-1])
        energy = np.asarray(decision.energy).ravel()
        p = np.asarray(decision.p_value).ravel()
        now = time.time()
        with open(self.path, "a", encoding="utf-8") as f:
            for i in blocked:
                rec = {
                    "time": now,
                    "state": [_json_number(v) for v in xs[i]],
                    "reason": Reason(int(reason[i])).name.lower(),
                    "reason_code": int(reason[i]),
                    "energy": _json_number(energy[i]),
                    "p_value": _json_number(p[i]),
                    **context,
                }
                f.write(json.dumps(rec, allow_nan=False) + "\n")
        return decision
