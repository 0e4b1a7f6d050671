"""Compile-time structure: every phase of a run shares one compiled step (one loop nest).

The compile time of `langevin.sample` grows with the number of copies of the step in the
program (each inlines the map's interpolation kernel and the random draws). Annealing, the
adaptation and the sampling steps run in one ``lax.scan`` over blocks of steps (two nested
``while`` loops), whatever the number of steps (no separate tail loop).
"""

import re

import jax
import numpy as np
import pytest

import energy
from langevin import _draw_blocks, _prepare, _runner
from langevin._options import Options


@pytest.fixture(scope="module")
def small_map():
    rng = np.random.default_rng(0)
    return energy.EnergyMap.from_samples(rng.normal(size=(4000, 2)), bins=16)


def _while_loops(target, method, n_steps, **kw):
    opts = Options(64, n_steps, None, method, None, 1.0, "auto", progress=False, **kw)
    prep = _prepare.prepare(target, jax.random.key(0), opts)
    text = _runner.compiled.lower(prep.p, prep.cfg).as_text()
    count, func = 0, ""
    for line in text.splitlines():
        found = re.search(r"func\.func (?:private |public )?@(\w+)", line)
        if found:
            func = found.group(1)
        # jax's threefry hash is a while loop of its own (rounds): not a loop over steps
        if "stablehlo.while" in line and not func.startswith("threefry"):
            count += 1
    return count


@pytest.mark.parametrize("method", ["ula", "mala"])
@pytest.mark.parametrize("n_steps", [96, 101])  # a whole number of blocks, and one that is not
def test_one_loop_nest_for_all_phases(small_map, method, n_steps):
    # noise annealing (+ adaptation for MALA) + sampling: one scan over blocks of steps
    assert _while_loops(small_map, method, n_steps) == 2


def test_block_length_covers_the_steps():
    for length in (1, 7, 31, 32, 33, 100, 101, 1000, 2000, 2999):
        k, pad = _draw_blocks.block_length(length, per_step=8)
        assert 1 <= k <= _draw_blocks.DRAW_BLOCK_STEPS and (length + pad) % k == 0
        assert pad < k and pad <= length // 8 + 1  # padding steps stay a small fraction
