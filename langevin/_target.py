"""What the runner learns about a target by duck typing, and how it passes one through ``jit``.

Protocol: ``target(x)`` for ``x`` of shape ``(d,)`` returns a scalar energy; optional attributes
``ndim``, ``lo``/``hi`` (box), ``scale`` (one relative unit per axis), ``spacing`` (grid spacing),
``noise_levels`` + ``energy_at(x, sigma)`` (a noise pyramid, relative units).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _fnkey

__all__ = ["TargetInfo", "callable_key", "describe", "from_key", "join", "split"]


@dataclasses.dataclass(frozen=True)
class TargetInfo:
    """Host-side facts about a target (float64 NumPy arrays, or None when absent)."""

    d: int
    lo: np.ndarray | None
    hi: np.ndarray | None
    scale: np.ndarray | None
    spacing: np.ndarray | None
    noise_levels: np.ndarray | None
    names: tuple[str, ...] | None


def _vector(target, name: str, d: int | None) -> np.ndarray | None:
    """Attribute ``name`` of the target as a float64 vector of length d, or None if absent."""
    v = getattr(target, name, None)
    if v is None or callable(v):
        return None
    try:
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"target.{name} must be a numeric vector, got {v!r}") from err
    if d is not None and arr.size == 1:
        arr = np.full(d, float(arr[0]))
    if d is not None and arr.size != d:
        raise ValueError(f"target.{name} has {arr.size} entries, the target has d = {d}")
    return arr


def describe(target, d_hint: int | None) -> TargetInfo:
    """Read the optional protocol attributes of ``target`` and check them."""
    if not callable(target):
        raise TypeError(
            f"target must be callable: an EnergyMap or a jax function (d,) -> scalar energy, "
            f"got {type(target).__name__}"
        )
    d = getattr(target, "ndim", None)
    if d is not None and not isinstance(d, (int, np.integer)):
        d = None
    if d is not None:
        d = int(d)
        if d_hint is not None and d_hint != d:
            raise ValueError(f"init has d = {d_hint} coordinates but target.ndim = {d}")
    else:
        d = d_hint
    if d is None:
        lo = _vector(target, "lo", None)
        d = None if lo is None else lo.size
    if d is None:
        raise ValueError(
            "cannot tell the dimension d of this target (it has no `ndim` or `lo`): pass init, "
            "an array of shape (n_chains, d) or (d,)"
        )
    lo, hi = _vector(target, "lo", d), _vector(target, "hi", d)
    if (lo is None) != (hi is None):
        raise ValueError("target has only one of `lo` / `hi`: give both or neither")
    if lo is not None and not np.all(lo < hi):
        raise ValueError(f"target bounds need lo < hi on every axis, got lo={lo}, hi={hi}")
    scale = _vector(target, "scale", d)
    if scale is not None and not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ValueError(f"target.scale must be finite and > 0, got {scale}")
    spacing = _vector(target, "spacing", d)
    if spacing is not None and not (np.all(np.isfinite(spacing)) and np.all(spacing > 0)):
        raise ValueError(f"target.spacing must be finite and > 0, got {spacing}")
    levels = None
    if getattr(target, "noise_levels", None) is not None and callable(
        getattr(target, "energy_at", None)
    ):
        levels = np.asarray(target.noise_levels, dtype=np.float64).reshape(-1)
        levels = levels[levels > 0]
        if levels.size == 0 or not np.all(np.isfinite(levels)) or np.any(np.diff(levels) >= 0):
            raise ValueError(
                f"target.noise_levels must be positive and strictly decreasing, got {levels}"
            )
    names = getattr(target, "names", None)
    names = tuple(str(n) for n in names) if isinstance(names, (tuple, list)) else None
    return TargetInfo(d, lo, hi, scale, spacing, levels, names)


class _ById:
    """Hash and compare an unhashable static object by identity (kept alive by the reference)."""

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return isinstance(other, _ById) and other.obj is self.obj


def _is_array(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray))


def split(obj) -> tuple[list, Any]:
    """Split a pytree into its array leaves (jit arguments) and a hashable static rest.

    An `EnergyMap` becomes its arrays (a new map of the same shape reuses the compiled program);
    a plain function is all static, keyed by its code and the values it reads
    (`langevin._fnkey`: a new lambda with the same code and values reuses the program), or by
    itself when those values cannot be compared. An object with a ``_bare()`` method (maps,
    shields, surrogates) is split without its informational metadata (provenance), which is
    compared by value and would otherwise make every new map a new program.
    """
    fkey = _fnkey.function_key(obj)
    if fkey is not None:
        return [], ("function", fkey)
    bare = getattr(obj, "_bare", None)
    if callable(bare):
        obj = bare()
    leaves, treedef = jax.tree_util.tree_flatten(obj)
    arrays = [leaf for leaf in leaves if _is_array(leaf)]
    rest = tuple(None if _is_array(leaf) else leaf for leaf in leaves)
    static = (treedef, rest)
    try:
        hash(static)
    except TypeError:
        return [], ("opaque", _ById(obj))
    return arrays, static


def join(arrays: list, static) -> Callable:
    """Inverse of `split`."""
    if static[0] == "opaque":
        return static[1].obj
    if static[0] == "function":
        return static[1].fn
    treedef, rest = static
    it = iter(arrays)
    leaves = [next(it) if leaf is None else leaf for leaf in rest]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def callable_key(fn) -> Any:
    """A hashable static stand-in for a callable (value-keyed function, itself, or identity)."""
    fkey = _fnkey.function_key(fn)
    if fkey is not None:
        return fkey
    try:
        hash(fn)
        return fn
    except TypeError:
        return _ById(fn)


def from_key(key) -> Callable:
    """Inverse of `callable_key`."""
    if isinstance(key, _fnkey.FunctionKey):
        return key.fn
    return key.obj if isinstance(key, _ById) else key


def check_scalar_output(target, d: int, dtype) -> None:
    """Raise a clear ValueError unless ``target`` maps a ``(d,)`` state to a scalar."""
    try:
        out = jax.eval_shape(target, jax.ShapeDtypeStruct((d,), dtype))
    except Exception as err:  # any failure to trace is the user's target failing on (d,)
        raise ValueError(
            f"target failed on a state of shape ({d},): {type(err).__name__}: {err}"
        ) from err
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            f"target must return a scalar energy for a state of shape ({d},), "
            f"got {'a ' + type(out).__name__ if shape is None else 'shape ' + str(shape)}"
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"target must return a floating-point energy, got dtype {out.dtype}")
