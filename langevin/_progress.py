"""Progress bars of compiled runs: a registry of tqdm bars fed by host callbacks from the program.

The program calls `tick` every step; every ``every`` steps it sends ``(run_id, step)`` to the host,
where `_progress_update` moves the bar registered under ``run_id``. A run with no bar compiles no
callback at all (``every = 0``).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["PROGRESS_EVERY", "progress_default", "run_with_progress", "tick"]

# One host callback every PROGRESS_EVERY steps.
PROGRESS_EVERY = 100

_BARS: dict[int, Any] = {}
_RUN_IDS = itertools.count(1)


def _progress_update(run_id, step) -> None:
    """Host side of the progress callback: move the bar of run ``run_id`` to ``step``."""
    bar = _BARS.get(int(np.asarray(run_id).reshape(-1)[0]))
    if bar is not None:
        s = int(np.max(np.asarray(step)))
        if s > bar.n:
            bar.update(s - bar.n)


def progress_default() -> bool:
    """A bar only on an interactive terminal and never under CI."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def tick(run_id, t, every: int) -> None:
    """Inside the program: report step ``t + 1`` to the host when it is a multiple of ``every``."""
    if every:
        jax.lax.cond(
            (t + 1) % every == 0,
            lambda: jax.debug.callback(_progress_update, run_id, t + 1),
            lambda: None,
        )


def new_run_id() -> int:
    """A fresh id for a bar (the program receives it as an argument: no recompilation)."""
    return next(_RUN_IDS)


def run_with_progress(fn: Callable, total: int, every: int, set_run_id: Callable[[int], None]):
    """Call ``fn()`` with a tqdm bar of ``total`` steps fed by the program's callbacks.

    ``set_run_id(i)`` hands the bar's id to the program's inputs before ``fn`` runs; with
    ``every = 0`` (no bar) ``fn`` is called as it is.
    """
    if not every:
        return fn()
    from tqdm.auto import tqdm

    run_id = new_run_id()
    set_run_id(run_id)
    bar = tqdm(total=total, desc="langevin", unit="step", leave=False)
    _BARS[run_id] = bar
    try:
        out = fn()
        jax.block_until_ready(out)
        return out
    finally:
        jax.effects_barrier()
        bar.close()
        _BARS.pop(run_id, None)
