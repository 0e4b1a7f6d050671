"""Design sweeps: a batch of settings (objective weights, fixed values, temperatures) in one program."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _prepare, _runner, _sample
from ._options import Options

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
) -> SweepResult:
    """Run a batch of settings in one compiled program and keep the best designs of each.

    Setting ``b`` runs exactly ``langevin.sample(target, jax.random.fold_in(key, b), n_chains,
    ..., weight=w_b, temperature=T_b, fixed=fixed_b)``; all settings are vmapped into one program.
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
    preps = []
    for b in range(n_set):
        row = {}
        if "temperature" in table:
            row["temperature"] = float(table["temperature"][b])
        if "fixed" in table:
            row["fixed"] = table["fixed"][b]
        if "weight" in table:
            row["weight"] = float(table["weight"][b])
        setting = dataclasses.replace(opts, **row)
        preps.append(_prepare.prepare(target, keys[b], setting, sharded=False))
    cfg = preps[0].cfg
    for b, prep in enumerate(preps[1:], start=1):
        if prep.cfg != cfg:
            raise ValueError(
                f"setting {b} needs a different program than setting 0 (e.g. a temperature of 0 "
                "next to positive ones under a noise schedule is fine, but different phases are "
                "not): split the sweep"
            )
    p = {k: v for k, v in preps[0].p.items() if k in _SHARED}
    for name in preps[0].p:
        if name not in _SHARED:
            p[name] = jnp.stack([prep.p[name] for prep in preps])
    prog = _vmapped(tuple(sorted(p)))
    prep0 = dataclasses.replace(preps[0], p=p)
    out = _sample.run_with_progress(lambda: prog(prep0.p, cfg), prep0)

    n = cfg.n_real
    pos = np.asarray(out["positions"])[:, :n]
    e_map = np.asarray(out["energies"])[:, :n]
    e_tot = np.asarray(out["total"])[:, :n]
    obj = None if out["objective"] is None else np.asarray(out["objective"])[:, :n]
    ok = ~np.asarray(out["diverged"])[:, :n] & np.isfinite(e_tot)
    allowed = np.ones_like(ok)
    if shield is not None:
        decision = shield(jnp.asarray(pos.reshape(-1, cfg.d)))
        allow = getattr(decision, "allow", None)
        if allow is None:
            raise ValueError("shield must return an object with an `.allow` (n,) bool array")
        allowed = np.asarray(allow, dtype=bool).reshape(n_set, n)
    valid = ok & allowed
    rank_key = np.where(valid, e_tot, np.inf)
    order = np.argsort(rank_key, axis=1, kind="stable")[:, :n_best]
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    return SweepResult(
        positions=np.take_along_axis(pos, order[:, :, None], axis=1),
        energies=take(e_map),
        total_energies=take(e_tot),
        objective=None if obj is None else take(obj),
        valid=take(valid),
        n_allowed=allowed.sum(axis=1),
        settings={
            "weight": np.asarray([float(pp.p["weight"]) for pp in preps]),
            "temperature": np.asarray([float(pp.p["temperature"]) for pp in preps]),
            "fixed": np.stack(
                [
                    np.where(np.asarray(pp.p["free"]), np.nan, np.asarray(pp.p["fixed"]))
                    for pp in preps
                ]
            ),
        },
        keys=keys,
    )
