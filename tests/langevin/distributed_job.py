"""A job run by the multi-process tests (`langevin._distributed.launch_local`), one per process.

``python distributed_job.py OUT.npz KIND``: every process makes the same calls; process 0 writes
what the test compares (the other processes' shards reach it through the gathers).
"""

from __future__ import annotations

import sys

import numpy as np

from langevin import _distributed


def sharded_draws(out: str) -> None:
    """Random draws and a cross-host sum over a global mesh of all processes' devices."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    topo = _distributed.initialize()
    mesh = _distributed.global_mesh("chains")
    sharding = NamedSharding(mesh, PartitionSpec("chains", None))
    host = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    x = _distributed.to_global(host, sharding)
    assert not x.is_fully_addressable or topo.num_processes == 1

    @jax.jit
    def move(key, x):
        z = jax.random.normal(key, x.shape, x.dtype)
        return jax.lax.with_sharding_constraint(x + z, sharding)

    y = move(jax.random.key(3), x)
    total = jax.jit(jnp.sum)(y)  # a reduction over every host's shards
    gathered = _distributed.gather(y)
    owned = sorted({s.index[0].start or 0 for s in y.addressable_shards})
    print(f"process {topo.process_id}: {topo} owns rows from {owned}", flush=True)
    if topo.process_id == 0:
        np.savez(
            out,
            y=gathered,
            total=np.asarray(total.addressable_data(0)),  # replicated: every host holds it
            topology=np.asarray(topo),
        )


def small_map():
    """A 2-D two-mode map (40 x 30 nodes), the same in every process."""
    import energy

    gx, gy = np.linspace(-3, 3, 40), np.linspace(-2, 2, 30)
    x, y = np.meshgrid(gx, gy, indexing="ij")
    p = np.exp(-((x - 1.2) ** 2 + y**2) / 0.5) + 0.5 * np.exp(-((x + 1.3) ** 2 + y**2) / 0.3)
    return energy.EnergyMap.from_grid(-np.log(p + 1e-3), [(-3, 3), (-2, 2)])


def langevin_calls(out: str) -> None:
    """`langevin.sample` and `langevin.sweep` on a map, every process making the same calls."""
    import jax
    import jax.numpy as jnp

    import langevin

    topo = _distributed.initialize()
    m = small_map()
    res = langevin.sample(m, jax.random.key(4), n_chains=30, n_steps=60, thin=20, progress=False)
    sw = langevin.sweep(
        m,
        jax.random.key(5),
        {"weight": np.linspace(0.0, 2.0, 6)},
        n_chains=16,
        n_best=3,
        objective=lambda x: jnp.sum((x - 1.0) ** 2),
        n_steps=40,
        progress=False,
    )
    print(f"process {topo.process_id}: {topo} sampled {res.positions.shape}", flush=True)
    if topo.process_id == 0:
        np.savez(
            out,
            positions=np.asarray(res.positions),
            energies=np.asarray(res.energies),
            diverged=np.asarray(res.diverged),
            trajectory=np.asarray(res.trajectory),
            sweep_positions=sw.positions,
            sweep_total=sw.total_energies,
            sweep_valid=sw.valid,
            topology=np.asarray(topo),
        )


if __name__ == "__main__":
    {"sharded_draws": sharded_draws, "langevin_calls": langevin_calls}[sys.argv[2]](sys.argv[1])
