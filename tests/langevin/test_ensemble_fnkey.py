"""The compile-cache key of plain functions (`langevin._fnkey`)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from langevin._fnkey import function_key

DATA = np.arange(4.0)


def _make(scale, arr=None):
    arr = np.ones(3) if arr is None else arr
    return lambda x: scale * jnp.sum(x**2) + jnp.sum(arr) + jnp.sum(DATA)


def test_same_code_and_values_give_equal_keys():
    assert function_key(_make(2.0)) == function_key(_make(2.0))
    assert hash(function_key(_make(2.0))) == hash(function_key(_make(2.0)))
    assert function_key(_make(2.0, jnp.ones(3))) == function_key(_make(2.0, jnp.ones(3)))


def test_any_value_change_changes_the_key():
    base = function_key(_make(2.0))
    assert base != function_key(_make(3.0))
    assert base != function_key(_make(2, None))  # int vs float: another program
    assert base != function_key(_make(2.0, np.ones(4)))
    assert base != function_key(_make(2.0, np.ones(3, np.float32)))
    arr = np.ones(3)
    before = function_key(_make(2.0, arr))
    arr[0] = 5.0  # mutated in place: the key follows the values
    assert before != function_key(_make(2.0, arr))


def test_a_module_global_is_part_of_the_key():
    before = function_key(_make(2.0))
    DATA[0] += 1.0
    try:
        assert before != function_key(_make(2.0))
    finally:
        DATA[0] -= 1.0
    assert before == function_key(_make(2.0))


def test_nested_functions_partials_and_pytrees():
    def outer(s):
        inner = lambda x: s * x  # noqa: E731
        return lambda x: jnp.sum(inner(x))

    assert function_key(outer(1.0)) == function_key(outer(1.0))
    assert function_key(outer(1.0)) != function_key(outer(2.0))

    def mk_partial(w):
        return functools.partial(lambda x, w: jnp.sum(w * x), w=w)

    assert function_key(mk_partial(jnp.ones(2))) == function_key(mk_partial(jnp.ones(2)))
    assert function_key(mk_partial(jnp.ones(2))) != function_key(mk_partial(jnp.zeros(2)))

    def mk_tree(t):
        return lambda x: t["a"] * jnp.sum(x) + t["b"][0]

    assert function_key(mk_tree({"a": 1.0, "b": (2.0,)})) == function_key(
        mk_tree({"a": 1.0, "b": (2.0,)})
    )


def test_unknown_objects_make_a_function_opaque():
    class Box:
        s = 1.0

    def mk(b):
        return lambda x: b.s * jnp.sum(x)

    assert function_key(mk(Box())) is None  # never reused wrongly: keyed by identity instead
    assert function_key(jax.jit(lambda x: x)) is None  # not a plain function
    assert function_key(object()) is None


def test_tracers_are_opaque():
    seen = []

    @jax.jit
    def f(s):
        seen.append(function_key(lambda x: s * x))
        return s

    f(1.0)
    assert seen == [None]
