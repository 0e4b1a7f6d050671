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


if __name__ == "__main__":
    {"sharded_draws": sharded_draws}[sys.argv[2]](sys.argv[1])
