"""Design sweeps: a batch of settings (objective weights, fixed values, temperatures) in one program."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _distributed, _plain, _prepare, _runner, _sample
from ._options import Options
from ._table import TableWriter

__all__ = ["SweepResult", "sweep"]

_SETTING_KEYS = ("weight", "temperature", "fixed")
_SHARED = ("target", "x0")  # program inputs common to all settings (not vmapped)


@functools.cache
def _vmapped(names: tuple[str, ...]):
    """The run program vmapped over settings, compiled once per input layout."""
    axes = {k: (None if k in _SHARED else 0) for k in names}
    return jax.jit(jax.vmap(_runner.program, in_axes=(axes, None)), static_argnums=1)


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """The best designs of every setting, ranked by total energy (lowest first).

    Attributes:
        positions: ``(B, k, d)`` best states per setting (k = ``n_best``).
        energies: ``(B, k)`` the target's energy ``E`` there.
        total_energies: ``(B, k)`` ``E + weight * objective`` (the ranking key).
        objective: ``(B, k)`` objective values, or None.
        valid: ``(B, k)`` bool: the design is finite and allowed by the shield. Rows are filled
            with the best remaining chains, invalid ones last (never silently dropped).
        n_allowed: ``(B,)`` how many of the ``n_chains`` final states the shield allowed.
        settings: the settings as NumPy arrays, one row per setting.
        keys: the key of each setting (``jax.random.fold_in(key, b)``): ``sample`` with it and
            the same setting reproduces that setting's chains.
    """

    positions: np.ndarray
    energies: np.ndarray
    total_energies: np.ndarray
    objective: np.ndarray | None
    valid: np.ndarray
    n_allowed: np.ndarray
    settings: dict[str, np.ndarray]
    keys: Any


def _settings(settings: dict) -> tuple[dict[str, np.ndarray], int]:
    """Check the settings table: known names, one leading batch size B."""
    if not isinstance(settings, dict) or not settings:
        raise ValueError(f"settings must be a non-empty dict with keys among {_SETTING_KEYS}")
    unknown = set(settings) - set(_SETTING_KEYS)
    if unknown:
        raise ValueError(f"settings: unknown keys {sorted(unknown)} (known: {_SETTING_KEYS})")
    out, sizes = {}, {}
    for name, value in settings.items():
        arr = np.asarray(value, dtype=np.float64)
        want = 2 if name == "fixed" else 1
        if arr.ndim != want:
            raise ValueError(
                f"settings[{name!r}] must have {want} dimension(s), got shape {arr.shape}"
            )
        out[name] = arr
        sizes[name] = arr.shape[0]
    if len(set(sizes.values())) != 1:
        raise ValueError(f"settings must all have the same number of rows, got {sizes}")
    b = next(iter(sizes.values()))
    if b < 1:
        raise ValueError("settings must have at least one row")
    return out, b


def sweep(
    target,
    key,
    settings: dict,
    n_chains: int,
    n_best: int = 8,
    *,
    objective=None,
    shield=None,
    n_steps=None,
    init=None,
    method="ula",
    step_size=None,
    temperature=1.0,
    weight=1.0,
    schedule="auto",
    bounds="auto",
    fixed=None,
    n_warmup=None,
    progress=None,
    output=None,
    chunk=None,
) -> SweepResult:
    """Run a batch of settings in one compiled program and keep the best designs of each.

    Setting ``b`` runs exactly ``langevin.sample(target, jax.random.fold_in(key, b), n_chains,
    ..., weight=w_b, temperature=T_b, fixed=fixed_b)``, with the same defaults: the settings
    that ``sample`` runs on the ensemble path (a plain function at ``T > 0`` with
    ``schedule="auto"``: no tempering, a warm-up adapted over the setting's chains) run one
    after the other, each in the program ``sample`` compiles once; all the others are vmapped
    into one program (e.g. ``T = 0`` settings: optimisation, annealed as in ``sample``).
    Designs are ranked by ``E_total = E + w_b * objective`` (lowest first); with ``shield``, states
    it blocks (``shield(positions).allow`` False) and diverged chains rank last and are flagged.

    Args:
        target: as in `langevin.sample`.
        key: a JAX key.
        settings: a dict of per-setting arrays with the same number of rows ``B``: ``"weight"``
            ``(B,)``, ``"temperature"`` ``(B,)``, ``"fixed"`` ``(B, d)`` (NaN = free axis).
            Missing entries take the ``weight`` / ``temperature`` / ``fixed`` arguments.
        n_chains: chains per setting.
        n_best: designs kept per setting (at most ``n_chains``).
        objective: ``(d,) -> scalar`` added with each setting's weight (optimisation at low T).
        shield: optional callable ``positions (n, d) -> object with .allow (n,) bool``
            (e.g. ``energy.Shield``).
        n_steps, init, method, step_size, temperature, weight, schedule, bounds, fixed,
        n_warmup, progress: as in `langevin.sample`.
        output: a ``.csv`` (or, with pyarrow, ``.parquet``) file: one row per design (setting,
            rank, state, energies, objective, validity), appended as each chunk of settings
            finishes (to ``OUTPUT.partial``, renamed when the sweep ends); never overwritten.
        chunk: settings per compiled call (None: all of them, or 64 with ``output``): device
            memory is bounded by the chunk, not by the sweep. Rounded up to a multiple of the
            device count; the settings are sharded over all devices (of all hosts under
            ``jax.distributed``) on a ``"settings"`` mesh axis.

    Returns:
        A `SweepResult`.

    Example:
        >>> import jax, jax.numpy as jnp, langevin
        >>> f = lambda x: 0.5 * jnp.sum((x - 1.0) ** 2)
        >>> res = langevin.sweep(lambda x: 0.5 * x @ x, jax.random.key(0),
        ...                      {"weight": [0.0, 1.0, 3.0]}, n_chains=64, n_best=2,
        ...                      objective=f, temperature=0.0, init=jnp.zeros(2), progress=False)
        >>> res.positions.shape
        (3, 2, 2)
    """
    table, n_set = _settings(settings)
    n_best = int(n_best)
    if not 1 <= n_best <= int(n_chains):
        raise ValueError(f"n_best must be between 1 and n_chains = {n_chains}, got {n_best}")
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_set))
    opts = Options(
        n_chains,
        n_steps,
        init,
        method,
        step_size,
        temperature,
        schedule,
        bounds=bounds,
        fixed=fixed,
        objective=objective,
        weight=weight,
        n_warmup=n_warmup,
        progress=progress,
    )
    settings_of = []
    for b in range(n_set):
        row = {}
        if "temperature" in table:
            row["temperature"] = float(table["temperature"][b])
        if "fixed" in table:
            row["fixed"] = table["fixed"][b]
        if "weight" in table:
            row["weight"] = float(table["weight"][b])
        settings_of.append(dataclasses.replace(opts, **row))
    # Like `sample`: a plain function at T > 0 with schedule="auto" takes the ensemble path
    # (no tempering, adaptation over the ensemble), one setting at a time (its warm-up adapts
    # over that setting's chains); every other setting runs in the vmapped program.
    plain = [
        _plain.applies(target, o.schedule, o.step_size, o.temperature, o.bounds)
        for o in settings_of
    ]

    def prep_of(b):
        if plain[b]:
            opts_b = dataclasses.replace(settings_of[b], schedule=None)
            return _prepare.prepare(target, keys[b], opts_b)
        return _prepare.prepare(target, keys[b], settings_of[b], sharded=False)

    first_vmapped = next((b for b in range(n_set) if not plain[b]), None)
    b0 = 0 if first_vmapped is None else first_vmapped
    prep0 = prep_of(b0)
    cfg = prep0.cfg
    n_dev = jax.device_count()
    size = n_set if chunk is None and output is None else min(int(chunk or 64), n_set)
    if size < 1:
        raise ValueError(f"chunk must be >= 1 settings, got {chunk}")
    size = -(-size // n_dev) * n_dev  # a multiple of the device count (padding: last setting)
    mesh = _distributed.global_mesh("settings") if n_dev > 1 else None
    names = list(prep0.info.names) if prep0.info.names else [f"x{i}" for i in range(cfg.d)]
    writer = None if output is None else TableWriter(output, names)
    parts = []
    complete = False
    try:
        for first in range(0, n_set, size):
            here = list(range(first, min(first + size, n_set)))
            rows_of = {}
            vm = [b for b in here if not plain[b]]
            if vm:
                rows = vm + [vm[-1]] * (-len(vm) % n_dev)  # padding: the last setting again
                preps = [prep0 if b == b0 else prep_of(b) for b in rows]
                for b, prep in zip(rows, preps, strict=True):
                    if prep.cfg != cfg:
                        raise ValueError(
                            f"setting {b} needs a different program than setting {b0} (e.g. "
                            "a temperature of 0 next to positive ones under a noise schedule is "
                            "fine, but different phases are not): split the sweep"
                        )
                part = _run_chunk(preps, cfg, mesh, shield, n_best)
                rows_of.update({b: _row(part, i) for i, b in enumerate(vm)})
            for b in here:
                if plain[b]:
                    prep = prep0 if b == b0 else prep_of(b)
                    rows_of[b] = _run_plain(prep, settings_of[b].n_warmup, shield, n_best)
            part = _stack([rows_of[b] for b in here])
            if writer is not None:
                writer.write(first, part["settings"], part)
            parts.append(part)
        complete = True
    finally:
        if writer is not None:
            writer.close(complete=complete)
    cat = lambda k: None if parts[0][k] is None else np.concatenate([p[k] for p in parts])  # noqa: E731
    return SweepResult(
        positions=cat("positions"),
        energies=cat("energies"),
        total_energies=cat("total_energies"),
        objective=cat("objective"),
        valid=cat("valid"),
        n_allowed=cat("n_allowed"),
        settings={
            k: np.concatenate([p["settings"][k] for p in parts]) for k in parts[0]["settings"]
        },
        keys=keys,
    )


def _run_chunk(preps, cfg, mesh, shield, n_best) -> dict:
    """One compiled call over a chunk of settings (sharded over ``mesh``), ranked on the host."""
    p = {k: v for k, v in preps[0].p.items() if k in _SHARED}
    for name in preps[0].p:
        if name not in _SHARED:
            p[name] = jnp.stack([prep.p[name] for prep in preps])
    if mesh is not None:
        from jax.sharding import NamedSharding, PartitionSpec

        def place(name, a):
            spec = PartitionSpec() if name in _SHARED else PartitionSpec("settings")
            return _distributed.to_global(np.asarray(a), NamedSharding(mesh, spec))

        def place_leaf(name, a):
            if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):  # keys travel as their bits
                impl = jax.random.key_impl(a)
                return jax.random.wrap_key_data(place(name, jax.random.key_data(a)), impl=impl)
            return place(name, a)

        p = {k: jax.tree_util.tree_map(lambda a, k=k: place_leaf(k, a), v) for k, v in p.items()}
    prog = _vmapped(tuple(sorted(p)))
    prep0 = dataclasses.replace(preps[0], p=p)
    out = _sample.run_with_progress(lambda: prog(prep0.p, cfg), prep0)
    out = {k: _distributed.gather(v) for k, v in out.items()}

    n = cfg.n_real
    obj = None if out["objective"] is None else np.asarray(out["objective"])[:, :n]
    return _rank(
        np.asarray(out["positions"])[:, :n],
        np.asarray(out["energies"])[:, :n],
        np.asarray(out["total"])[:, :n],
        obj,
        np.asarray(out["diverged"])[:, :n],
        preps,
        shield,
        n_best,
    )


def _run_plain(prep, n_warmup, shield, n_best) -> dict:
    """One setting on the ensemble path (exactly `sample`'s run), ranked like `_run_chunk`."""
    res = _sample.plain_result(_plain.run(prep, n_warmup), prep)
    one = lambda a: None if a is None else np.asarray(a)[None]  # noqa: E731
    part = _rank(
        one(res.positions),
        one(res.energies),
        one(res.total_energies),
        one(res.objective),
        one(res.diverged),
        [prep],
        shield,
        n_best,
    )
    return _row(part, 0)


def _row(part: dict, i: int) -> dict:
    """Setting ``i`` of a ranked part, keeping its leading axis (length 1)."""
    return jax.tree_util.tree_map(lambda a: a[i : i + 1], part)


def _stack(rows: list[dict]) -> dict:
    """Ranked parts of one setting each, concatenated in order."""
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *rows)


def _rank(pos, e_map, e_tot, obj, diverged, preps, shield, n_best) -> dict:
    """Rank the final states ``(B, n, ...)`` of the settings of ``preps`` (best first)."""
    n_set, n, d = pos.shape
    ok = ~diverged & np.isfinite(e_tot)
    allowed = np.ones_like(ok)
    if shield is not None:
        decision = shield(jnp.asarray(pos.reshape(-1, d)))
        allow = getattr(decision, "allow", None)
        if allow is None:
            raise ValueError("shield must return an object with an `.allow` (n,) bool array")
        allowed = np.asarray(allow, dtype=bool).reshape(n_set, n)
    valid = ok & allowed
    rank_key = np.where(valid, e_tot, np.inf)
    order = np.argsort(rank_key, axis=1, kind="stable")[:, :n_best]
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    return {
        "positions": np.take_along_axis(pos, order[:, :, None], axis=1),
        "energies": take(e_map),
        "total_energies": take(e_tot),
        "objective": None if obj is None else take(obj),
        "valid": take(valid),
        "n_allowed": allowed.sum(axis=1),
        "settings": {
            "weight": np.asarray([float(pp.p["weight"]) for pp in preps]),
            "temperature": np.asarray([float(pp.p["temperature"]) for pp in preps]),
            "fixed": np.stack(
                [
                    np.where(np.asarray(pp.p["free"]), np.nan, np.asarray(pp.p["fixed"]))
                    for pp in preps
                ]
            ),
        },
    }
