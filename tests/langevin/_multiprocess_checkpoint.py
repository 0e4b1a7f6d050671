"""A checkpointed run under ``jax.distributed``, one per process (`launch_local` or the test's own).

``python _multiprocess_checkpoint.py OUT.npz CHECKPOINT``: every process makes the same call with
the same (shared) checkpoint folder; process 0 logs each save on stderr (``langevin.checkpoint``
logger), which the test reads to kill every process after a save it has seen, and writes the
outputs.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from langevin import _distributed


def main(out: str, checkpoint: str) -> None:
    topo = _distributed.initialize()
    import jax

    import energy
    import langevin

    if topo.process_id == 0:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        log = logging.getLogger("langevin.checkpoint")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    gx = np.linspace(-3, 3, 32)
    x, y = np.meshgrid(gx, gx, indexing="ij")
    p = np.exp(-((x - 1.0) ** 2 + y**2)) + 0.6 * np.exp(-((x + 1.5) ** 2 + (y - 1) ** 2) / 0.4)
    m = energy.EnergyMap.from_grid(-np.log(p + 1e-4), [(-3, 3), (-3, 3)])
    res = langevin.sample(
        m,
        jax.random.key(12),
        n_chains=64,
        n_steps=800,
        progress=False,
        checkpoint=checkpoint,
        checkpoint_every=0.0,
    )
    print(f"process {topo.process_id}: {topo} done", flush=True)
    if topo.process_id == 0:
        np.savez(
            out,
            positions=np.asarray(res.positions),
            energies=np.asarray(res.energies),
            diverged=np.asarray(res.diverged),
            step_size=np.asarray(res.step_size),
            topology=np.asarray(topo),
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
