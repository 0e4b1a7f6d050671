"""Discovery sweeps and known-bad examples per domain profile (keyed by the profile's name).

A discovery sweep asks the grounded landscape one question per value of a *condition* variable
(one ``langevin.sweep`` setting per value, the condition fixed):

- ``"max"``: the highest value of a *target* variable that the shield allows there (wind: the
  highest power the proven envelope allows at each wind speed);
- ``"energy"``: the allowed state with the lowest energy there (grid: the frequency-power
  operating points the data proved most often).

A user objective (``--objective module:function``, a JAX function of one state ``(d,)`` to a
scalar) replaces the question: the best allowed state by ``E + objective`` at each condition.

Known-bad examples are states the domain knows to be impossible or broken; onboarding checks
that the shield blocks every one of them. Axes an example does not name are set to the map's
lowest-energy node (the most proven value).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Any

import numpy as np

__all__ = ["DISCOVERY", "KNOWN_BAD", "Discovery", "check_known_bad", "load_objective", "run"]


@dataclasses.dataclass(frozen=True)
class Discovery:
    """One profile's default discovery sweep."""

    title: str
    condition: str  # the swept variable (name or alias in the profile)
    goal: str  # "max" (of target) or "energy" (lowest energy)
    target: str | None = None
    n_values: int = 12  # condition values, spread over the map's bounds


DISCOVERY: dict[str, Discovery] = {
    "wind": Discovery(
        "highest power the proven envelope allows at each wind speed",
        condition="wind_speed",
        goal="max",
        target="power",
    ),
    "grid": Discovery(
        "frequency-power operating points with the lowest energy",
        condition="frequency",
        goal="energy",
    ),
    "casting": Discovery(
        "the most proven operating point at each melt temperature",
        condition="temperature",
        goal="energy",
    ),
}
# Without a profile (or with one not listed): the most proven state along the first axis.
DEFAULT = Discovery("the most proven state along the first variable", condition="", goal="energy")

# name -> list of (values by variable name, why it is bad). NaN marks a broken sensor.
KNOWN_BAD: dict[str, list[tuple[dict[str, float], str]]] = {
    "wind": [
        ({"wind_speed": 3.0, "power": 1800.0}, "1800 kW at 3 m/s: more than the wind carries"),
        ({"wind_speed": 1.0, "power": 2500.0}, "2500 kW below cut-in: impossible"),
        ({"wind_speed": 9.0, "power": math.nan}, "power sensor broken (NaN)"),
        ({"wind_speed": 40.0, "power": 1000.0}, "40 m/s: beyond cut-out, never proven"),
        ({"wind_speed": -2.0, "power": 500.0}, "negative wind speed: a broken anemometer"),
    ],
    "grid": [
        ({"frequency": 45.0}, "45 Hz: a collapsing grid"),
        ({"frequency": 65.0}, "65 Hz: an islanded overspeed"),
        ({"frequency": math.nan}, "frequency sensor broken (NaN)"),
    ],
    "casting": [
        ({"temperature": 300.0}, "a melt at room temperature: a broken thermocouple"),
        ({"temperature": 2400.0}, "2400 K: beyond any furnace in the profile"),
        ({"temperature": math.nan}, "thermocouple broken (NaN)"),
    ],
}


def _axis(names, profile, wanted: str) -> int | None:
    """Index of the variable ``wanted`` among the map's names (by name or profile alias)."""
    if not wanted:
        return None
    low = [str(n).lower() for n in names]
    if wanted.lower() in low:
        return low.index(wanted.lower())
    if profile is not None:
        for i, n in enumerate(names):
            var = profile.find(str(n))
            if var is not None and var.name.lower() == wanted.lower():
                return i
    return None


def load_objective(spec: str):
    """``"module:function"`` -> the function (imported; the module's code runs, as asked)."""
    mod, sep, fn = spec.partition(":")
    if not sep or not mod or not fn:
        raise ValueError(f"--objective {spec!r}: expected module:function")
    try:
        module = importlib.import_module(mod)
    except ImportError as err:
        raise ValueError(f"--objective {spec!r}: cannot import {mod!r} ({err})") from err
    f = getattr(module, fn, None)
    if not callable(f):
        raise ValueError(f"--objective {spec!r}: {mod!r} has no function {fn!r}")
    return f


def _mode(m) -> np.ndarray:
    """The map's lowest-energy node (the most proven state)."""
    v = np.asarray(m.values)
    idx = np.unravel_index(int(np.argmin(v)), v.shape)
    return np.array([g[i] for g, i in zip(m.grid, idx, strict=True)], dtype=np.float64)


def run(
    m,
    shield,
    key,
    *,
    profile=None,
    objective=None,
    objective_name: str | None = None,
    n_chains: int = 256,
    progress: bool | None = False,
) -> dict[str, Any]:
    """Run the profile's discovery sweep (or the user objective's) on map ``m``.

    Returns a JSON-able dict: ``title``, ``columns`` (the variables, then ``energy`` and
    ``allowed``), ``rows`` (one per condition value; the state is None where no chain ended in
    an allowed state) and ``settings`` (chains, condition).
    """
    import jax.numpy as jnp

    import langevin

    name = profile.name if profile is not None else None
    spec = DISCOVERY.get(name, DEFAULT) if name else DEFAULT
    names = list(m.names)
    d = m.ndim
    cond = _axis(names, profile, spec.condition)
    if cond is None:
        spec, cond = DEFAULT, 0
    target = _axis(names, profile, spec.target or "") if spec.goal == "max" else None
    goal = spec.goal if (spec.goal == "energy" or target is not None) else "energy"
    title = spec.title if goal == spec.goal else DEFAULT.title
    lo, hi = m.bounds[cond]
    # Condition values strictly inside the bounds: the faces are where the data thins out.
    values = np.linspace(lo, hi, spec.n_values + 2)[1:-1]
    fixed = np.full((len(values), d), np.nan)
    fixed[:, cond] = values
    weight = 0.0
    obj = None
    if objective is not None:
        obj, weight, goal = objective, 1.0, "objective"
        title = f"lowest E + {objective_name or 'objective'} at each {names[cond]}"
    elif goal == "max":
        span = float(m.bounds[target][1] - m.bounds[target][0])
        # Tilt the chains towards a high target: -target / span is O(1) over the map, the same
        # order as the energy differences inside the envelope; the shield cuts what is unproven.
        t = target

        def obj(x):
            return -x[t] / span

        weight = 2.0
    # Every final chain is kept (n_best = n_chains) so the goal is computed over all of them.
    res = langevin.sweep(
        m,
        key,
        {"fixed": fixed, "weight": np.full(len(values), weight)},
        n_chains=n_chains,
        n_best=n_chains,
        objective=obj,
        shield=shield,
        progress=progress,
    )
    pos = np.asarray(res.positions, dtype=np.float64)
    valid = np.asarray(res.valid)
    rows = []
    for b in range(len(values)):
        ok = valid[b]
        row = {"condition": float(values[b]), "n_allowed": int(res.n_allowed[b])}
        if not ok.any():
            row.update(state=None, energy=None, allowed=False)
        else:
            cand = pos[b][ok]
            if goal == "max":
                i = int(np.argmax(cand[:, target]))
            else:  # lowest energy, or lowest total energy: the sweep ranked them already
                i = 0
            x = cand[i]
            dec = shield(jnp.asarray(x[None, :]))
            row.update(
                state=[float(v) for v in x],
                energy=float(np.asarray(dec.energy)[0]),
                allowed=bool(np.asarray(dec.allow)[0]),
            )
        rows.append(row)
    return {
        "title": title,
        "goal": goal,
        "condition": names[cond],
        "target": names[target] if goal == "max" else None,
        "objective": objective_name,
        "names": names,
        "n_chains": int(n_chains),
        "rows": rows,
    }


def table_csv(result: dict) -> str:
    """The discovery table as CSV text (variables, energy, allowed; empty where none)."""
    names = result["names"]
    lines = [",".join([*names, "energy", "allowed", "chains_allowed"])]
    for row in result["rows"]:
        if row["state"] is None:
            cells = [""] * len(names)
            cells[names.index(result["condition"])] = f"{row['condition']:.9g}"
            lines.append(",".join([*cells, "", "false", str(row["n_allowed"])]))
        else:
            cells = [f"{v:.9g}" for v in row["state"]]
            ok = "true" if row["allowed"] else "false"
            lines.append(",".join([*cells, f"{row['energy']:.9g}", ok, str(row["n_allowed"])]))
    return "\n".join(lines) + "\n"


def check_known_bad(m, shield, profile=None) -> list[dict]:
    """Decide the profile's known-bad examples; one dict per example (state, blocked, reason)."""
    import energy

    name = profile.name if profile is not None else None
    out = []
    base = _mode(m)
    reasons = {int(r): r.name.lower() for r in energy.Reason}
    for values, why in KNOWN_BAD.get(name or "", []):
        x = base.copy()
        usable = True
        for var, v in values.items():
            i = _axis(list(m.names), profile, var)
            if i is None:
                usable = False
                break
            x[i] = v
        if not usable:
            continue
        dec = shield(x[None, :])
        r = int(np.asarray(dec.reason)[0])
        out.append(
            {
                "state": [None if not math.isfinite(v) else float(v) for v in x],
                "why": why,
                "blocked": not bool(np.asarray(dec.allow)[0]),
                "reason": reasons[r],
            }
        )
    return out
