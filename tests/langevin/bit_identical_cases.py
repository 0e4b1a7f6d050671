"""Cases of the bit-identity regression test (run in a fresh process with 8 fake CPU devices).

``python tests/langevin/bit_identical_cases.py`` prints one SHA-256 digest per case: the bytes of
every array a run returns (positions, energies, acceptance, diverged, step, trajectory). The
expected digests in ``test_bit_identical.py`` were computed with this file on main before the
runner was rebuilt from its kernels (commit c48fa8c), so the same key keeps giving the same
samples bit for bit; they were recomputed on purpose since (the noise pyramid, the float32 map
build, the runner's counter-based random numbers: see test_bit_identical.py).
"""

import hashlib
import json

import jax
import jax.numpy as jnp
import numpy as np

import energy
import langevin


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.asarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def of_sample(r) -> str:
    return digest(
        r.positions,
        r.energies,
        r.total_energies,
        r.objective,
        r.acceptance,
        r.diverged,
        r.step_size,
        r.trajectory,
        r.energy_trace,
    )


def quad(x):
    return 0.5 * x @ x + 0.1 * jnp.sin(3.0 * x[0])


def tilt(x):
    return 0.3 * x[0] - 0.2 * x[-1] ** 2


# Cases also run sharded over the 8 devices (each case costs a compilation: keep the test short).
SHARDED = ("map_ula_auto", "map_mala_auto", "fn_ula_auto", "fn_mala_auto", "map_mala_none_thin")


AUTO_BEFORE = langevin.geometric(10.0, 1.0, 500)


def cases():
    assert len(jax.devices()) == 8, "run with --xla_force_host_platform_device_count=8"
    one = jax.devices()[:1]
    rng = np.random.default_rng(0)
    m = energy.EnergyMap.from_samples(rng.normal(size=(4000, 2)), bins=24)
    m3 = energy.EnergyMap.from_samples(rng.normal(size=(4000, 3)) * [1.0, 2.0, 0.5], bins=12)
    k = jax.random.key(3)
    common = dict(progress=False)
    runs = {
        # maps: noise annealing (auto), post-annealing adaptation for MALA, fixed axes
        "map_ula_auto": (m, dict(n_chains=100, n_steps=60)),
        "map_mala_auto": (m, dict(n_chains=100, n_steps=60, method="mala", n_warmup=30)),
        "map_ula_none": (m, dict(n_chains=64, n_steps=80, schedule=None)),
        "map_mala_none_thin": (
            m,
            dict(n_chains=64, n_steps=80, method="mala", schedule=None, thin=20),
        ),
        "map3_ula_fixed": (m3, dict(n_chains=50, n_steps=70, fixed={1: 0.3})),
        "map3_mala_fixed_thin": (
            m3,
            dict(n_chains=50, n_steps=70, method="mala", fixed={0: -0.2}, thin=10, n_warmup=20),
        ),
        "map_ula_cold_objective": (
            m,
            dict(n_chains=40, n_steps=50, temperature=0.0, objective=tilt, weight=0.5),
        ),
        # plain functions: adaptation before annealing, temperature annealing (what "auto"
        # meant before the ensemble path took plain functions: named, so the digests hold)
        "fn_ula_auto": (
            quad,
            dict(n_chains=70, n_steps=50, init=jnp.zeros(2), n_warmup=40, schedule=AUTO_BEFORE),
        ),
        "fn_mala_auto": (
            quad,
            dict(
                n_chains=70,
                n_steps=50,
                init=jnp.zeros(2),
                method="mala",
                n_warmup=40,
                schedule=AUTO_BEFORE,
            ),
        ),
        "fn_mala_none_step": (
            quad,
            dict(
                n_chains=70,
                n_steps=90,
                init=jnp.zeros(3),
                method="mala",
                step_size=0.4,
                schedule=None,
            ),
        ),
        "fn_ula_none_bounds_obj": (
            quad,
            dict(
                n_chains=70,
                n_steps=90,
                init=jnp.zeros(3),
                step_size=0.05,
                schedule=None,
                bounds=[(-0.5, 0.5), (-1, 1), (-2, 0.1)],
                objective=tilt,
                weight=2.0,
            ),
        ),
        "fn_mala_bounds_fixed_thin": (
            quad,
            dict(
                n_chains=70,
                n_steps=60,
                init=jnp.zeros(3),
                method="mala",
                schedule=None,
                n_warmup=30,
                bounds=[(-0.5, 0.5), (-1, 1), (-2, 0.1)],
                fixed={2: 0.05},
                thin=15,
            ),
        ),
        "fn_ula_geometric_fixed": (
            quad,
            dict(
                n_chains=70,
                n_steps=40,
                init=jnp.zeros(3),
                step_size=0.02,
                fixed={0: 0.1},
                schedule=langevin.geometric(4.0, 1.0, 30),
            ),
        ),
        "fn_mala_cold": (
            quad,
            dict(
                n_chains=33,
                n_steps=40,
                init=jnp.ones(2),
                method="mala",
                temperature=0.0,
                n_warmup=20,
            ),
        ),
        "fn_ula_cold_thin": (
            quad,
            dict(n_chains=33, n_steps=40, init=jnp.ones(2), temperature=0.0, n_warmup=20, thin=8),
        ),
        "fn_mala_d5": (
            lambda x: 0.5 * jnp.sum(x**2 * jnp.arange(1.0, 6.0)),
            dict(
                n_chains=40,
                n_steps=50,
                init=jnp.zeros(5),
                method="mala",
                n_warmup=25,
                schedule=langevin.linear(2.0, 1.0, 20),
            ),
        ),
    }
    out = {}
    for name, (target, kw) in runs.items():
        out[name + "/1dev"] = of_sample(langevin.sample(target, k, devices=one, **kw, **common))
        if name in SHARDED:  # sharded over 8 devices (1 device is the default elsewhere)
            out[name + "/8dev"] = of_sample(langevin.sample(target, k, **kw, **common))
    sw = langevin.sweep(
        quad,
        k,
        {"weight": [0.0, 1.0], "temperature": [0.5, 1.0]},
        n_chains=30,
        n_best=4,
        objective=tilt,
        n_steps=40,
        init=jnp.zeros(2),
        method="mala",
        n_warmup=20,
        progress=False,
    )
    out["sweep_fn_mala"] = digest(sw.positions, sw.energies, sw.total_energies, sw.valid)
    sw = langevin.sweep(
        m,
        k,
        {"fixed": [[np.nan, 0.0], [0.5, np.nan]]},
        n_chains=30,
        n_best=3,
        n_steps=40,
        progress=False,
    )
    out["sweep_map_ula"] = digest(sw.positions, sw.energies, sw.total_energies, sw.valid)
    return out


if __name__ == "__main__":
    print(json.dumps(cases(), indent=1, sort_keys=True))
