"""A compile-cache key for plain Python functions: their code and the VALUES they read.

``jax.jit`` with a function as a static argument hashes it by identity, so every new lambda
recompiles (6-7 s for a posterior). `function_key` returns a hashable key that is equal for
two functions with the same code whose closure cells, default arguments and referenced module
globals hold equal values; the runner compiles once per key and a new lambda with the same code
and values reuses the program.

What is compared, and how (everything else makes the function "opaque": keyed by identity, as
before):

- numbers, strings, bytes, None, NumPy scalars: by value (and type);
- NumPy and (concrete) JAX arrays: by shape, dtype and a SHA-1 of their bytes (a 100 MB array
  costs ~0.1 s per call; a tracer is opaque);
- tuples, lists, dicts with hashable keys, frozensets, ``functools.partial``: element by
  element (a list mutated in place gives a new key: no stale program);
- registered pytrees (e.g. an `energy.EnergyMap`, ``flax.struct`` dataclasses): their tree
  structure and leaves as above;
- nested Python functions (closures, globals they call): recursively, the same way;
- modules, classes, built-in and jitted functions, NumPy ufuncs: by identity.

Safe: a value that can change between calls changes the key. Not covered (the same limits as
``jax.jit``): a module's attributes read through it (``mymod.SCALE`` is keyed by the module, so
rebinding ``mymod.SCALE`` is not seen), names looked up dynamically (``globals()[...]``,
``eval``), and objects that are none of the above (a plain class instance makes the function
opaque, so it is never reused wrongly, only recompiled).
"""

from __future__ import annotations

import functools
import hashlib
import types
from typing import Any

import jax
import numpy as np

__all__ = ["function_key"]

_MAX_DEPTH = 8


class _Opaque(Exception):
    """Raised when a reachable value cannot be keyed by value."""


class _Identity:
    """Hash and compare by identity (the object is kept alive by the key)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return isinstance(other, _Identity) and other.obj is self.obj


def _array_key(a) -> tuple:
    if isinstance(a, jax.core.Tracer):
        raise _Opaque
    arr = np.asarray(a)
    digest = hashlib.sha1(np.ascontiguousarray(arr).view(np.uint8).reshape(-1)).hexdigest()
    return ("array", arr.shape, str(arr.dtype), type(a).__name__, digest)


def _code_names(code: types.CodeType) -> set[str]:
    """Global names a code object (and the code nested in it) may read."""
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _code_names(c)
    return names


_BY_VALUE = (type(None), bool, int, float, complex, str, bytes, np.generic)
_BY_IDENTITY = (
    types.ModuleType,
    type,
    types.BuiltinFunctionType,
    np.ufunc,
)


def _key(v: Any, depth: int, seen: frozenset) -> Any:
    """The value key of ``v``; raises `_Opaque` when it has none."""
    if isinstance(v, _BY_VALUE):
        return ("value", type(v).__name__, repr(v), v)
    if isinstance(v, (np.ndarray, jax.Array)):
        return _array_key(v)
    if isinstance(v, _BY_IDENTITY):
        return ("id", _Identity(v))
    if depth > _MAX_DEPTH:
        raise _Opaque
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_key(e, depth + 1, seen) for e in v))
    if isinstance(v, frozenset):
        return ("frozenset", frozenset(_key(e, depth + 1, seen) for e in v))
    if isinstance(v, dict):
        try:
            items = sorted(v.items(), key=lambda kv: repr(kv[0]))
            return ("dict", tuple((k, _key(e, depth + 1, seen)) for k, e in items))
        except TypeError as err:
            raise _Opaque from err
    if isinstance(v, types.FunctionType):
        if id(v) in seen:  # recursion (a function calling itself through a global)
            return ("recursive", v.__code__)
        return _function(v, depth + 1, seen | {id(v)})
    if isinstance(v, functools.partial):
        return (
            "partial",
            _key(v.func, depth + 1, seen),
            _key(v.args, depth + 1, seen),
            _key(v.keywords, depth + 1, seen),
        )
    if callable(v) and type(v).__module__.startswith(("jax", "jaxlib", "numpy")):
        return ("id", _Identity(v))  # jitted / custom_jvp / vmapped library functions
    leaves, treedef = jax.tree_util.tree_flatten(v)
    if len(leaves) == 1 and leaves[0] is v:  # not a registered pytree: unknown object
        raise _Opaque
    try:
        hash(treedef)
    except TypeError as err:
        raise _Opaque from err
    return ("pytree", treedef, tuple(_key(leaf, depth + 1, seen) for leaf in leaves))


def _function(fn: types.FunctionType, depth: int, seen: frozenset) -> tuple:
    """Code, closure values, defaults and referenced globals of a Python function."""
    code = fn.__code__
    cells = []
    for cell in fn.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell (a name not yet bound)
            cells.append(("empty",))
            continue
        cells.append(_key(contents, depth, seen))
    glb = fn.__globals__
    used = sorted(n for n in _code_names(code) if n in glb)
    globals_key = tuple((n, _key(glb[n], depth, seen)) for n in used)
    return (
        "function",
        code,
        _Identity(glb),
        tuple(cells),
        _key(fn.__defaults__, depth, seen),
        _key(fn.__kwdefaults__, depth, seen),
        globals_key,
    )


class FunctionKey:
    """A hashable stand-in for a function: equal for same code and equal values (module doc).

    ``key.fn`` is the function it was made from; two equal keys may hold different function
    objects that compute the same thing.
    """

    __slots__ = ("fn", "_key", "_hash")

    def __init__(self, fn, key):
        self.fn = fn
        self._key = key
        self._hash = hash(key)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return isinstance(other, FunctionKey) and self._key == other._key

    def __repr__(self):
        return f"FunctionKey({getattr(self.fn, '__qualname__', self.fn)!r})"


def function_key(fn) -> FunctionKey | None:
    """A value-based key for a plain function or ``functools.partial``, or None when opaque.

    Example:
        >>> make = lambda s: (lambda x: x * s)
        >>> function_key(make(2.0)) == function_key(make(2.0))
        True
        >>> function_key(make(2.0)) == function_key(make(3.0))
        False
    """
    if not isinstance(fn, (types.FunctionType, functools.partial)):
        return None
    try:
        key = _key(fn, 0, frozenset())
        hash(key)
    except (_Opaque, TypeError, RecursionError):
        return None
    return FunctionKey(fn, key)
