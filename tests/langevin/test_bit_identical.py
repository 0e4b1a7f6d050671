"""Same key, same samples, bit for bit: the runner rebuilt from its kernels changed no number.

The digests below were computed on main at commit c48fa8c (before the runner was rebuilt from
the public kernels) by ``tests/langevin/bit_identical_cases.py``, which runs ULA and MALA on
maps (noise annealing, adaptation after it, fixed axes, objective, T = 0) and on plain functions
(adaptation before annealing, temperature annealing, explicit schedules, bounds, thin), on 1 and
8 devices, and two sweeps. A digest hashes every array a run returns. It runs in a fresh process
(XLA fixes the device count at start). A change of algorithm that is meant to change the draws
must say so and recompute these digests from the commit before it.

The map cases were recomputed once since, on purpose: the multiresolution noise pyramid (issue
10: coarse levels on their own grids, built under jit, log Z on the device) changes the map's
energies in their last bits and its coarse levels by design; the runner itself is unchanged (the
plain-function digests, which no map touches, still match c48fa8c). And a second time for the
float32 build of `from_counts` (issue 10): energies of data cells move by <= 1-2 float32 ulps
(smoothing rounded to float32), and in 3-D an empty cell equally near two data cells may take the
other one's energy (+ the same distance); the runner is unchanged. And a third time for the
runner's random numbers (issue 10: Threefry-2x32 on (step, index) counters, fused by XLA; same
law, other numbers, docs/langevin.md "Random numbers"): every digest of the runner changes but
map_ula_cold_objective (T = 0 draws no noise) and sweep_fn_mala (the plain-function ensemble
path, which still draws with jax.random); fn_ula_auto and map_mala_none_thin are now also the
same on 1 and 8 devices.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "fn_mala_auto/1dev": "e82df1ef57bb9d0b",
    "fn_mala_auto/8dev": "5390b2a4daab798f",
    "fn_mala_bounds_fixed_thin/1dev": "d8084356eefffade",
    "fn_mala_cold/1dev": "c81d7c0fb46b9ae7",
    "fn_mala_d5/1dev": "6c3ef80e0b96751e",
    "fn_mala_none_step/1dev": "885b1c56812c031c",
    "fn_ula_auto/1dev": "c342344eab7a4e4e",
    "fn_ula_auto/8dev": "c342344eab7a4e4e",
    "fn_ula_cold_thin/1dev": "af2aff75b3837523",
    "fn_ula_geometric_fixed/1dev": "1632bfb079050b10",
    "fn_ula_none_bounds_obj/1dev": "ce350b6b8d993838",
    "map3_mala_fixed_thin/1dev": "05955275fd6883bc",
    "map3_ula_fixed/1dev": "4f43fbe232e2582c",
    "map_mala_auto/1dev": "2e0340b1b61c6ea4",
    "map_mala_auto/8dev": "8aceccfffb162225",
    "map_mala_none_thin/1dev": "5ca05a8c63fdbccc",
    "map_mala_none_thin/8dev": "5ca05a8c63fdbccc",
    "map_ula_auto/1dev": "5763c611dae9914a",
    "map_ula_auto/8dev": "5763c611dae9914a",
    "map_ula_cold_objective/1dev": "2aa2095639be7cec",
    "map_ula_none/1dev": "25f53666c2231c6c",
    "sweep_fn_mala": "1c13da63b8ed034b",
    "sweep_map_ula": "f62bf855ebabac6c",
}


@pytest.mark.slow
def test_same_key_gives_the_same_samples_as_before_the_refactor():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    env.pop("JAX_ENABLE_X64", None)
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "langevin" / "bit_identical_cases.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    changed = {k: (got.get(k), v) for k, v in EXPECTED.items() if got.get(k) != v}
    assert not changed, f"runs whose draws changed (got, expected): {changed}"
    assert set(got) == set(EXPECTED)
