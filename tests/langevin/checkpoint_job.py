"""A long run for the kill-and-resume test: ``python checkpoint_job.py OUT.npz CHECKPOINT METHOD``.

``CHECKPOINT`` is a folder, or ``-`` for a run without checkpoints (the reference). Each saved
checkpoint is logged on stderr (``langevin.checkpoint`` logger), which the test reads through a
pipe to kill the run at a chunk boundary it has seen.
"""

from __future__ import annotations

import logging
import sys

import jax
import numpy as np

import energy
import langevin


def main(out: str, checkpoint: str, method: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    log = logging.getLogger("langevin.checkpoint")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    gx = np.linspace(-3, 3, 48)
    x, y = np.meshgrid(gx, gx, indexing="ij")
    p = np.exp(-((x - 1.0) ** 2 + y**2)) + 0.6 * np.exp(-((x + 1.5) ** 2 + (y - 1) ** 2) / 0.4)
    m = energy.EnergyMap.from_grid(-np.log(p + 1e-4), [(-3, 3), (-3, 3)])
    kwargs = {}
    if checkpoint != "-":
        kwargs = {"checkpoint": checkpoint, "checkpoint_every": 0.0}
    res = langevin.sample(
        m,
        jax.random.key(11),
        n_chains=256,
        n_steps=3000,
        method=method,
        progress=False,
        **kwargs,
    )
    np.savez(
        out,
        positions=np.asarray(res.positions),
        energies=np.asarray(res.energies),
        diverged=np.asarray(res.diverged),
        acceptance=np.zeros(0) if res.acceptance is None else np.asarray(res.acceptance),
        step_size=np.asarray(res.step_size),
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
