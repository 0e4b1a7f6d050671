"""Chains sharded over 8 fake CPU devices give the same samples as one device (same key).

XLA fixes the device count when it starts, so the check runs in a fresh Python process with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    import energy, langevin

    assert len(jax.devices()) == 8
    one = jax.devices()[:1]
    out = {}

    def quad(x):
        return 0.5 * x @ x + 0.1 * jnp.sin(3.0 * x[0])

    # ULA: adaptation (a median over chains), temperature annealing, sampling.
    # MALA: a given step, no annealing (keeps the compile short).
    tempered = langevin.geometric(10.0, 1.0, 500)
    for method, extra in (("ula", dict(schedule=tempered)), ("mala", dict(step_size=0.5, schedule=None))):
        kw = dict(n_chains=1000, n_steps=200, init=jnp.zeros(2), method=method, progress=False,
                  **extra)
        a = langevin.sample(quad, jax.random.key(5), **kw)  # all 8 devices (1000 -> 1008 chains)
        b = langevin.sample(quad, jax.random.key(5), devices=one, **kw)
        out[method] = {
            "shards": len(a.positions.sharding.device_set),
            "positions_equal": bool(np.array_equal(a.positions, b.positions)),
            "energies_equal": bool(np.array_equal(a.energies, b.energies)),
            "step_equal": bool(np.array_equal(a.step_size, b.step_size)),
        }

    # The plain-function default (adaptation over the ensemble): the same adapted step, and
    # positions equal to rounding (the sharded program rounds differently, ~1e-6).
    kw = dict(n_chains=1000, n_steps=50, n_warmup=40, init=jnp.zeros(2), progress=False)
    a = langevin.sample(quad, jax.random.key(5), **kw)
    b = langevin.sample(quad, jax.random.key(5), devices=one, **kw)
    out["ensemble"] = {
        "shards": len(a.positions.sharding.device_set),
        "step_equal": bool(np.array_equal(a.step_size, b.step_size)),
        "max_diff": float(np.max(np.abs(np.asarray(a.positions) - np.asarray(b.positions)))),
    }

    rng = np.random.default_rng(0)
    m = energy.EnergyMap.from_samples(rng.normal(size=(5000, 2)), bins=32)
    # The default schedule anneals through the map's noise pyramid (energy_at).
    kw = dict(n_chains=1024, n_steps=100, progress=False)
    a = langevin.sample(m, jax.random.key(6), **kw)
    b = langevin.sample(m, jax.random.key(6), devices=one, **kw)
    out["map"] = {
        "shards": len(a.positions.sharding.device_set),
        "positions_equal": bool(np.array_equal(a.positions, b.positions)),
        "energies_equal": bool(np.array_equal(a.energies, b.energies)),
    }
    print(json.dumps(out))
    """
)


def test_eight_fake_devices_equal_one():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for method in ("ula", "mala"):
        r = out[method]
        assert r["shards"] == 8
        assert r["positions_equal"] and r["energies_equal"] and r["step_equal"], r
    ens = out["ensemble"]
    assert ens["shards"] == 8 and ens["step_equal"] and ens["max_diff"] < 1e-4, ens
    assert out["map"]["shards"] == 8
    assert out["map"]["positions_equal"] and out["map"]["energies_equal"], out["map"]
