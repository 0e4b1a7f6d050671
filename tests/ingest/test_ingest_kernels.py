"""The compiled fast paths (numba, when installed) agree bit for bit with the exact paths."""

from __future__ import annotations

import boost_histogram as bh
import numpy as np
import pytest

from ingest import _readers, _work

# The kernels need numba, an optional dependency (the `fast` extra) that `dev` installs.
assert _readers._simple_kernel() and _work._binner(), "numba kernels unavailable"


def _block(rng, n_rows: int, n_cols: int, fmt) -> tuple[bytes, list[list[str]]]:
    cells = [[fmt(rng) for _ in range(n_cols)] for _ in range(n_rows)]
    text = "".join(",".join(row) + "\n" for row in cells)
    return text.encode(), cells


def _decimal(rng) -> str:
    kind = rng.integers(0, 8)
    if kind == 0:
        return ""  # a missing value
    if kind == 1:
        return "nan"
    v = rng.normal() * 10.0 ** rng.integers(-6, 7)
    if kind == 2:
        return f"{v:.3e}"
    if kind == 3:
        return str(int(v))
    if kind == 4:
        return f"{v:+.9f}"
    return f"{v:.{rng.integers(0, 8)}f}"


def test_csv_kernel_matches_python_float(rng):
    """Every plain decimal the kernel accepts parses to exactly Python's float."""
    for _ in range(30):
        text, cells = _block(rng, 200, 4, _decimal)
        got = _readers._simple_parse(text, ord(","), 4, [0, 1, 2, 3])
        assert got is not None, "a block of plain decimals must take the compiled path"
        for j in range(4):
            want = np.array([float(r[j]) if r[j] else np.nan for r in cells])
            np.testing.assert_array_equal(got[j], want)


def test_csv_kernel_skips_columns_and_repeats(rng):
    text, cells = _block(rng, 100, 5, _decimal)
    got = _readers._simple_parse(text, ord(","), 5, [3, 1, 3])
    for out, j in zip(got, [3, 1, 3], strict=True):
        np.testing.assert_array_equal(out, [float(r[j]) if r[j] else np.nan for r in cells])


@pytest.mark.parametrize(
    "line",
    [
        b"1.0,2.0\n3.0\n",  # a short line
        b"1.0,2.0,3.0\n",  # a long line
        b"1.0, 2.0\n",  # a space
        b"inf,2.0\n",  # inf: left to the exact path
        b"12345678901234567890,1\n",  # more than 17 digits
        b"1e400,1\n",  # exponent out of the exact range
        b"abc,1\n",  # junk
    ],
)
def test_csv_kernel_declines_what_it_cannot_parse_exactly(line):
    assert _readers._simple_parse(line, ord(","), 2, [0, 1]) is None


def test_fill_kernel_matches_boost_on_edges(rng):
    """Values on, just below and just above every edge, NaN, float32: the same counts as boost."""
    index, add = _work._binner()
    edges = [np.linspace(-1.0, 1.0, 9), np.array([0.0, 0.1, 0.5, 2.0, 7.5])]
    cols = []
    for e in edges:
        on = np.repeat(e, 3)
        near = np.concatenate([np.nextafter(e, -np.inf), np.nextafter(e, np.inf)])
        vals = np.concatenate([on, near, [np.nan], rng.uniform(e[0] - 1, e[-1] + 1, 200)])
        cols.append(vals)
    n = min(len(c) for c in cols)
    cols = [rng.permutation(c)[:n] for c in cols]
    for dtype in (np.float64, np.float32):
        cs = [c.astype(dtype) for c in cols]
        keep = np.ones(n, dtype=bool)
        keep[::7] = False
        hist = bh.Histogram(*[bh.axis.Variable(e, underflow=True, overflow=True) for e in edges])
        hist.fill(*[c[keep] for c in cs])
        want = hist.view()
        shape = [len(e) - 1 for e in edges]
        counts = np.zeros(int(np.prod(shape)), dtype=np.int64)
        flat = np.zeros(n, dtype=np.int64)
        stride = 1
        for c, e, k in zip(cs[::-1], edges[::-1], shape[::-1], strict=True):
            index(c, keep, np.ascontiguousarray(e, dtype=np.float64), stride, flat)
            stride *= k
        add(flat, counts)
        np.testing.assert_array_equal(counts.reshape(shape), want)
