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
same on 1 and 8 devices. And a fourth time for the float32 normal transform (issue 10: one
Box-Muller branch on both words of each Threefry hash instead of sqrt(2) erf^-1 on one word;
same law, other numbers, docs/langevin.md "Random numbers"): the same digests change again
(all but map_ula_cold_objective and sweep_fn_mala); the flat layout of the draws in the commit
before it changed none.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "fn_mala_auto/1dev": "318a857559616797",
    "fn_mala_auto/8dev": "c4d7d1fbeb55ed8b",
    "fn_mala_bounds_fixed_thin/1dev": "a2e3ead1f3cb39a7",
    "fn_mala_cold/1dev": "9833bfb8896ef386",
    "fn_mala_d5/1dev": "d1a022861ad4453f",
    "fn_mala_none_step/1dev": "ca3badf0d7aa525a",
    "fn_ula_auto/1dev": "c76ea4ae9d7f45b7",
    "fn_ula_auto/8dev": "c76ea4ae9d7f45b7",
    "fn_ula_cold_thin/1dev": "5019025cc92c7e2a",
    "fn_ula_geometric_fixed/1dev": "225b492f2fff399f",
    "fn_ula_none_bounds_obj/1dev": "e588463fbc6f359f",
    "map3_mala_fixed_thin/1dev": "f4480b6598f9949e",
    "map3_ula_fixed/1dev": "db7d3747b8e407b9",
    "map_mala_auto/1dev": "671bc0d10c51e78a",
    "map_mala_auto/8dev": "c3a30a92087fe006",
    "map_mala_none_thin/1dev": "47c43360f7041d6f",
    "map_mala_none_thin/8dev": "47c43360f7041d6f",
    "map_ula_auto/1dev": "a44b8c19f2eaa9ca",
    "map_ula_auto/8dev": "a44b8c19f2eaa9ca",
    "map_ula_cold_objective/1dev": "2aa2095639be7cec",
    "map_ula_none/1dev": "80e29ea5ac8cfa2e",
    "sweep_fn_mala": "1c13da63b8ed034b",
    "sweep_map_ula": "3b68c173e74764df",
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
