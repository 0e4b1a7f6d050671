"""Long runs that survive a kill: the sampling phase in chunks, checkpointed, resumed bit for bit.

`run` drives the program of `langevin._runner` in its parts: the head (initial states,
adaptation, annealing and the sampling steps that do not fill a chunk), one call per chunk of
sampling steps, and the tail (the outputs). The state between two calls is the whole state of
the chains, and a step's random draws are a function of the key and the global step index only,
so a run restarted from a saved state at a chunk boundary ends with exactly the states of an
uninterrupted one. The state is saved right after the head (annealing is not repeated on a
resume) and then at the first chunk boundary at least ``every`` seconds after the last save.

Saves and resumes are logged (logger ``langevin.checkpoint``, level INFO):
``saved step S of N in DIR`` and ``resumed at step S of N from DIR``.

Under ``jax.distributed`` every process runs this same loop on its shards. A save gathers the
state to every process (`langevin._checkpoint` then has process 0 write it into the folder all
share); whether to save at a chunk boundary is process 0's decision, broadcast, since a save is
collective. A resumed state is put back as global arrays (chain-sharded as the program's own).
The outputs are gathered to every process at the end. ``trace=`` is refused there for now.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

import jax
import numpy as np

from . import _checkpoint, _distributed, _runner

__all__ = ["config_of", "run"]

log = logging.getLogger("langevin.checkpoint")

# Chunks of the sampling phase: at most this many (a chunk boundary is where a save can happen;
# each chunk is one call of the compiled chunk program, ~0.1-1 ms of dispatch).
MAX_CHUNKS = 100
# Recorded numbers per chunk of a thin run: 2^24 (64 MB in float32). Two chunks are held at a
# time: the one being computed and the one being copied out (or written) meanwhile.
DRAW_CHUNK_ELEMENTS = 1 << 24


def _digest_tree(tree) -> str:
    """SHA-256 of the leaves of a pytree of arrays (shape, dtype and bytes, in tree order)."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        a = np.ascontiguousarray(_distributed.gather(leaf))  # whole, under jax.distributed too
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _describe(fn) -> str | None:
    """A name and a hash of the code of a callable (a plain function's identity across runs)."""
    if fn is None:
        return None
    code = getattr(fn, "__code__", None)
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    if code is None:
        return name
    return f"{name}:{hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:16]}"


def config_of(prep, chunk_steps: int) -> dict:
    """What a checkpoint must match: the program's inputs and static configuration.

    The inputs (key, initial states or their law, the target's arrays, step sizes, schedule
    tables) are hashed; the static configuration is kept readable (so that a refusal can say what
    differs). A plain-function target is known by its name and a hash of its code.
    """
    cfg = prep.cfg
    p = {k: v for k, v in prep.p.items() if k != "run_id"}  # run_id: the progress bar's
    static = {
        f: getattr(cfg, f)
        for f in cfg._fields
        if f not in ("target", "objective", "sharding", "progress_every")
    }
    return {
        "static": {
            k: (v if isinstance(v, int | float | str | None) else repr(v))
            for k, v in static.items()
        },
        "inputs_sha256": _digest_tree(p),
        "target": _describe(getattr(cfg.target, "fn", None)) or repr(type(cfg.target).__name__),
        "objective": _describe(cfg.objective),
        "chunk_steps": int(chunk_steps),
        "devices": jax.device_count(),
    }


def plan(cfg, chunk_steps: int | None = None) -> tuple[int, list[tuple[int, int]]]:
    """The cut of a run: ``(n_chunked, [(start, length), ...])`` of its chunks.

    Without ``thin``: the last ``n_chunked`` sampling steps in equal chunks (at most `MAX_CHUNKS`;
    the steps that do not fill one run in the head). With ``thin``: every recorded step, in
    chunks of whole thin blocks holding at most `DRAW_CHUNK_ELEMENTS` recorded numbers (the last
    chunk may be shorter).
    """
    first_of = lambda n_chunked: cfg.n_pre + cfg.n_anneal + cfg.n_post + cfg.n_steps - n_chunked  # noqa: E731
    if cfg.thin:
        n_keep = cfg.n_steps // cfg.thin
        per_draw = cfg.n * (cfg.d + 1)
        q = max(1, min(n_keep, DRAW_CHUNK_ELEMENTS // per_draw, math.ceil(n_keep / MAX_CHUNKS)))
        if chunk_steps is not None:
            q = max(1, min(n_keep, int(chunk_steps) // cfg.thin))
        n_chunked = n_keep * cfg.thin
        # The uncut program indexes the draws of its recorded steps from the end of the steps
        # before them plus the unrecorded sampling steps (n_steps - n_keep * thin) once more:
        # the same indices here, so that the draws are the same.
        first = first_of(n_chunked) + cfg.n_steps - n_chunked
        chunks = []
        for j in range(0, n_keep, q):
            chunks.append((first + j * cfg.thin, min(q, n_keep - j) * cfg.thin))
        return n_chunked, chunks
    steps = chunk_steps if chunk_steps is not None else math.ceil(cfg.n_steps / MAX_CHUNKS)
    steps = max(1, min(int(steps), cfg.n_steps))
    k = cfg.n_steps // steps
    first = first_of(k * steps)
    return k * steps, [(first + i * steps, steps) for i in range(k)]


def _key_data(key) -> np.ndarray:
    """The raw bits of a key (typed or legacy uint32), as saved beside the state."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key)


def _flat(state) -> tuple[dict, object]:
    leaves, treedef = jax.tree_util.tree_flatten(state)
    return {f"leaf{i:03d}": leaf for i, leaf in enumerate(leaves)}, treedef


def _host(state, key) -> dict:
    """The state's arrays whole on this host (gathered from every process), with the key."""
    return {k: _distributed.gather(v) for k, v in _flat(state)[0].items()} | {"key": key}


def _due(due: bool) -> bool:
    """Process 0's decision to save now, the same in every process (a save is collective)."""
    if jax.process_count() == 1:
        return due
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(due)))


def _place(a: np.ndarray, cfg):
    """A restored host array as the chunk program takes it.

    One process: as it is (the program puts it on its devices). Several: a global array,
    chain-sharded when its first axis is the chains (as the program's own state is), replicated
    otherwise; every process holds the whole of it, so each keeps its shards.
    """
    if jax.process_count() == 1 or cfg.sharding is None:
        return a
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = cfg.sharding.mesh
    chains = a.ndim >= 1 and a.shape[0] == cfg.n
    spec = PartitionSpec("chains", *([None] * (a.ndim - 1))) if chains else PartitionSpec()
    return _distributed.to_global(a, NamedSharding(mesh, spec))


def run(prep, *, checkpoint=None, every: float = 0.0, trace=None, chunk_steps=None) -> dict:
    """The outputs of ``_runner.compiled(prep.p, prep.cfg)``, run in chunks.

    Args:
        prep: the prepared run (`langevin._prepare.prepare`).
        checkpoint: a checkpoint folder (see `langevin._checkpoint.Checkpoint`), or None.
        every: seconds between checkpoint saves (0: at every chunk boundary).
        trace: a folder for the recorded draws of a ``thin`` run (`langevin._trace.TraceFiles`),
            or None (the draws are copied to host memory chunk by chunk).
        chunk_steps: sampling steps per chunk (None: see `plan`).

    Returns:
        The program's outputs, with ``trajectory`` / ``energy_trace`` as host arrays (memory
        maps of the trace files with ``trace``); the states are those of an uninterrupted run.
    """
    from ._trace import TraceFiles

    cfg, p = prep.cfg, prep.p
    many = jax.process_count() > 1
    if trace is not None and many:
        raise ValueError(
            f"trace={trace!r} is not supported under jax.distributed yet (every process would "
            "write the same files); leave it out (the draws are then gathered in memory), or "
            "run on one host"
        )
    if checkpoint is not None and cfg.thin and trace is None:
        raise ValueError(
            "a checkpointed run with thin= needs trace=DIR: the draws recorded before a kill "
            "must be on disk to be kept"
        )
    n_chunked, chunks = plan(cfg, chunk_steps)
    total = cfg.n_pre + cfg.n_anneal + cfg.n_post + cfg.n_steps
    call = _runner.compiled
    ck = None
    if checkpoint is not None:
        ck = _checkpoint.Checkpoint(
            checkpoint,
            config_of(prep, chunks[0][1] if chunks else 0) | {"trace": trace is not None},
        )
    head_shapes = jax.eval_shape(lambda p: call(p, cfg, part="head", n_chunked=n_chunked), p)
    leaves_like, treedef = _flat(head_shapes)
    key = _key_data(p["key"])
    loaded = None if ck is None else ck.load(dict(leaves_like, key=key))
    if loaded is None:
        state = call(p, cfg, part="head", n_chunked=n_chunked)
        position = chunks[0][0] if chunks else total
        if ck is not None:
            ck.save(position, _host(state, key))
            log.info("saved step %d of %d in %s", position, total, ck.root)
    else:
        position, arrays = loaded
        if not np.array_equal(arrays.pop("key"), key):
            raise _checkpoint.CheckpointError(f"checkpoint {ck.root}: saved with another key")
        # Host arrays: the chunk program puts them back on the devices it shards over (under
        # jax.distributed, global arrays of which each process keeps its shards).
        state = jax.tree_util.tree_unflatten(
            treedef, [_place(arrays[n], cfg) for n in sorted(arrays)]
        )
        log.info("resumed at step %d of %d from %s", position, total, ck.root)

    n_real, n_keep = cfg.n_real, (cfg.n_steps // cfg.thin if cfg.thin else 0)
    sink = traj = etrace = None
    if n_keep:
        dtype = np.dtype(jax.eval_shape(lambda s: s["carry"][0], head_shapes).dtype)
        if trace is not None:
            sink = TraceFiles(trace, n_keep, n_real, cfg.d, dtype, resume=loaded is not None)
        else:
            traj = np.empty((n_keep, n_real, cfg.d), dtype)
            etrace = np.empty((n_keep, n_real), dtype)
    first = chunks[0][0] if chunks else total
    last = time.monotonic()
    pending = None  # the last chunk's draws, still to be copied out

    def flush():
        """Copy the pending chunk's draws to the host (or write them to the trace files)."""
        nonlocal pending
        if pending is None:
            return
        j, tr, et = pending
        pending = None
        tr = _distributed.gather(tr)[:, :n_real]
        et = _distributed.gather(et)[:, :n_real]
        if sink is not None:
            sink.write(j, tr, et)
        else:
            traj[j : j + tr.shape[0]] = tr
            etrace[j : j + tr.shape[0]] = et

    try:
        for start, length in chunks:
            if start < position:
                continue  # done before the checkpoint
            out = call(
                p, cfg, part="chunk", n_chunked=n_chunked, state=state, start=start, length=length
            )
            state = {"carry": out["carry"], "h": out["h"]}
            # The chunk just dispatched runs on the devices while the previous chunk's draws are
            # copied and written here (jax dispatches asynchronously): the write is hidden behind
            # the steps instead of adding to them. Two chunks of draws are in memory at most.
            flush()
            if n_keep:
                pending = ((start - first) // cfg.thin, out["trajectory"], out["energy_trace"])
            position = start + length
            if ck is not None and position < total and _due(time.monotonic() - last >= every):
                flush()  # the draws before the saved position are in the files first
                if sink is not None:
                    sink.sync()
                ck.save(position, _host(state, key))
                log.info("saved step %d of %d in %s", position, total, ck.root)
                last = time.monotonic()
        flush()
    finally:
        if sink is not None:
            sink.close()
    out = dict(call(p, cfg, part="tail", n_chunked=n_chunked, state=state))
    jax.block_until_ready(out)
    if many:  # the outputs whole on every host (the uncut program's come out replicated)
        out = {k: _distributed.gather(v) for k, v in out.items()}
    if sink is not None:
        traj, etrace = sink.arrays()
    if n_keep:
        out["trajectory"], out["energy_trace"] = traj, etrace
    if ck is not None:
        ck.remove()
    return out
