"""Shield: decisions per second of the shield against a bare lookup and scikit-learn detectors.

A 2-D operating envelope (a synthetic wind-turbine power curve: wind speed vs power, with noise)
is the in-distribution data; a 64^2 map from the training states, calibrated (alpha = 0.01) on
20k held-out states. Engines, interleaved in one process:

- ``shield(x)``: the decision as ``sh(x)`` returns it (allow, energy, reason ready; the p-value
  computed when it is asked for) and its A/A twin;
- ``shield(x) + p_value``: the same with its p-value asked for (all four fields);
- ``shield.allow(x)``: the decision alone;
- ``jit(m.energy)``: a bare jitted lookup of the map's energy (no checks);
- ``IsolationForest.score_samples`` and ``KernelDensity.score_samples`` (scikit-learn, on
  standardised inputs, on smaller batches: rates are per state).

AUROC of each score on held-out normal states against faulty ones (curtailment, a shifted curve,
a sensor offset) is reported beside the rates. Each of our engines' rows also carries the CPU
time of every round (``cpu_rounds_s``: user + system of all threads, with its median and range),
and the result the load average before and after the rounds.

Baseline: ``BENCH_SHIELD_BASELINE`` set to a git revision of this checkout (``312078e``, ``main``)
imports that revision's ``energy`` package (:func:`bench._common.import_revision`); set to the
path of a ``.py`` file, that file is loaded as another version of ``energy/_shield.py``
(``energy._shield_baseline``, over today's map). Its ``shield(x)`` (all four fields, as that
version returns them) and ``shield.allow(x)``, on the same map and calibration states, join the
interleaved rounds as ``... [baseline]``, with the ratios ours / baseline, and must decide
identically on the batch.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import _common as C

SUITE = "shield"
RATED_KW = 2050.0  # rated power of an MM82-class 2 MW turbine (kW)
SIZES = {
    # training and calibration states; batches of ours, IsolationForest and KernelDensity (KDE
    # scores every state against all its fit states: slow, so small batches); KDE fit states;
    # test states for the KDE's AUROC
    "smoke": dict(
        train=20_000,
        cal=2_000,
        ours=65_536,
        iso=2_048,
        kde=64,
        kde_fit=2_000,
        kde_auroc=200,
        repeats=2,
    ),
    "quick": dict(
        train=100_000,
        cal=20_000,
        ours=1_048_576,
        iso=16_384,
        kde=128,
        kde_fit=20_000,
        kde_auroc=500,
        repeats=5,
    ),
    "full": dict(
        train=300_000,
        cal=20_000,
        ours=1_048_576,
        iso=131_072,
        kde=512,
        kde_fit=20_000,
        kde_auroc=2_000,
        repeats=9,
    ),
}


def power_curve(wind: np.ndarray) -> np.ndarray:
    """A logistic power curve: cut-in about 3 m/s, rated power from about 13 m/s."""
    return RATED_KW / (1.0 + np.exp(-(wind - 8.5) / 1.3))


def normal_states(rng: np.random.Generator, n: int) -> np.ndarray:
    """Wind ~ Weibull(k=2, scale 7 m/s); power on the curve with 4% multiplicative + 20 kW noise."""
    wind = 7.0 * rng.weibull(2.0, size=n)
    p = power_curve(wind) * (1.0 + 0.04 * rng.normal(size=n)) + 20.0 * rng.normal(size=n)
    return np.stack([wind, np.clip(p, -50.0, None)], axis=-1)


def faulty_states(rng: np.random.Generator, n: int) -> np.ndarray:
    """Curtailment, a curve shifted by +2.5 m/s, a power sensor offset of +-300 kW (a third each)."""
    k = n // 3
    w = rng.uniform(9.0, 20.0, size=k)
    curtailed = np.stack([w, power_curve(w) * rng.uniform(0.1, 0.5, size=k)], -1)
    s = normal_states(rng, k)
    shifted = np.stack([s[:, 0], power_curve(s[:, 0] - 2.5) * (1 + 0.04 * rng.normal(size=k))], -1)
    o = normal_states(rng, n - 2 * k)
    offset = o + np.stack([np.zeros(len(o)), rng.choice([-300.0, 300.0], size=len(o))], -1)
    return np.concatenate([curtailed, shifted, offset])


PAIRS = (
    ("shield(x)", "shield(x) (A/A)"),
    ("shield(x)", "shield(x) [baseline]"),
    ("shield(x) + p_value", "shield(x) [baseline]"),
    ("shield.allow(x)", "shield.allow(x) [baseline]"),
    ("shield(x)", "shield(x) + p_value"),
    ("shield(x)", "jit(m.energy)"),
    ("shield(x)", "IsolationForest.score_samples"),
    ("shield(x) + p_value", "IsolationForest.score_samples"),
    ("shield.allow(x)", "IsolationForest.score_samples"),
    ("shield(x)", "KernelDensity.score_samples"),
)


def _baseline_module():
    """The baseline ``energy._shield`` at ``$BENCH_SHIELD_BASELINE`` (None when it is unset):
    a ``.py`` file (or a path with a ``/``) is loaded as ``energy._shield_baseline``; anything
    else is a git revision whose ``energy`` package is imported as ``energy_baseline``."""
    spec = os.environ.get("BENCH_SHIELD_BASELINE")
    if not spec:
        return None
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        return _baseline_file(spec)
    where = Path(tempfile.gettempdir()) / "bench-shield-baseline"
    return C.import_revision(spec, where)[0]


def _baseline_file(path: str):
    """The ``_shield`` module at ``path``, loaded as ``energy._shield_baseline``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BENCH_SHIELD_BASELINE={path!r}: no such file")
    name = "energy._shield_baseline"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # its relative imports (energy._io, energy._map) resolve in energy
    spec.loader.exec_module(mod)
    return mod


class _CpuClock:
    """Wraps an engine so that each call blocks on its result and records the CPU time (user +
    system, all threads of this process) it took."""

    def __init__(self, fn):
        import jax

        self.fn, self.block, self.cpu_s = fn, jax.block_until_ready, []

    def __call__(self):
        c0 = time.process_time()
        out = self.block(self.fn())
        self.cpu_s.append(time.process_time() - c0)
        return out


def _auroc(labels: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half), high score = anomalous."""
    from scipy.stats import rankdata

    s = np.where(np.isfinite(score), score, np.finfo(np.float64).max)
    r = rankdata(s)
    pos = labels == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def run(size: str, backend: str, repeats: int | None = None) -> dict:
    import jax
    import jax.numpy as jnp

    import energy

    cfg = SIZES[size]
    rng = np.random.default_rng(0)
    train = normal_states(rng, cfg["train"])
    cal = normal_states(rng, cfg["cal"])
    test = np.concatenate([normal_states(rng, 10_000), faulty_states(rng, 10_000)])
    labels = np.repeat([0, 1], 10_000)
    big = jnp.asarray(normal_states(rng, cfg["ours"]).astype(np.float32))
    lo, hi = train.min(0), train.max(0)
    pad = 0.04 * (hi - lo)
    m = energy.EnergyMap.from_samples(
        train, bins=64, bounds=list(zip(lo - pad, hi + pad, strict=True)), names=["wind", "power"]
    )
    sh = energy.Shield.calibrate(m, cal, alpha=0.01)
    lookup = jax.jit(m.energy)
    case = {"d": 2, "map": "64^2", "calibration": cfg["cal"], "batch": cfg["ours"]}

    def decided(d):
        return d.allow, d.energy, d.reason  # the decision as sh(x) returns it

    engines = {
        "shield(x)": lambda: decided(sh(big)),
        "shield(x) (A/A)": lambda: decided(sh(big)),
        "shield(x) + p_value": lambda: tuple(sh(big)),
        "shield.allow(x)": lambda: sh.allow(big),
        "jit(m.energy)": lambda: lookup(big),
    }
    base = _baseline_module()
    if base is not None:
        m0 = m
        if hasattr(base, "__path__"):  # a revision's whole package: its own map
            m0 = base.EnergyMap.from_samples(
                train,
                bins=64,
                bounds=list(zip(lo - pad, hi + pad, strict=True)),
                names=["wind", "power"],
            )
        sh0 = base.Shield.calibrate(m0, cal, alpha=0.01)
        engines["shield(x) [baseline]"] = lambda: tuple(sh0(big))
        engines["shield.allow(x) [baseline]"] = lambda: sh0.allow(big)
        case["baseline"] = os.environ["BENCH_SHIELD_BASELINE"]
    work = dict.fromkeys(engines, cfg["ours"])
    auroc = {"shield(x)": _auroc(labels, np.asarray(sh(test).energy, np.float64))}
    rows = []
    sk = C.optional("sklearn")
    if sk:
        from sklearn.ensemble import IsolationForest
        from sklearn.neighbors import KernelDensity

        mu, sd = train.mean(0), train.std(0)
        iso = IsolationForest(n_estimators=100, random_state=0).fit((train - mu) / sd)
        sub = train[rng.choice(len(train), cfg["kde_fit"], replace=False)]
        kde = KernelDensity(bandwidth=float(len(sub) ** (-1 / 6))).fit((sub - mu) / sd)
        xi = (np.asarray(big[: cfg["iso"]], np.float64) - mu) / sd
        xk = (np.asarray(big[: cfg["kde"]], np.float64) - mu) / sd
        engines["IsolationForest.score_samples"] = lambda: iso.score_samples(xi)
        engines["KernelDensity.score_samples"] = lambda: kde.score_samples(xk)
        work["IsolationForest.score_samples"] = cfg["iso"]
        work["KernelDensity.score_samples"] = cfg["kde"]
        auroc["IsolationForest.score_samples"] = _auroc(
            labels, -iso.score_samples((test - mu) / sd)
        )
        idx = rng.choice(len(test), cfg["kde_auroc"], replace=False)
        auroc["KernelDensity.score_samples"] = _auroc(
            labels[idx], -kde.score_samples((test[idx] - mu) / sd)
        )
    else:
        for name in ("IsolationForest.score_samples", "KernelDensity.score_samples"):
            rows.append(C.skipped(SUITE, case, name, "not installed"))
    engines = {k: _CpuClock(f) for k, f in engines.items()}
    load_before = list(os.getloadavg())
    timings = C.measure(engines, repeats or cfg["repeats"])
    load_after = list(os.getloadavg())
    if base is not None:  # after the timing, so that its compile time is measured too
        same = all(
            np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
            for a, b in zip(sh(big), sh0(big), strict=True)
        )
        if not same:
            raise AssertionError("the baseline shield decides differently on the batch")
    for name, t in timings.items():
        for row in C.rows_of(SUITE, case, {name: t}, work[name], "decisions"):
            row["batch"] = work[name]
            if name in auroc:
                row["auroc"] = auroc[name]
            clock = engines[name]
            if isinstance(clock, _CpuClock) and "rounds_s" in row:
                cpu = clock.cpu_s[-len(row["rounds_s"]) :]  # the timed rounds (after cold, warm)
                row["cpu_rounds_s"] = cpu
                row["cpu_s"] = C.summary(cpu)
            rows.append(row)
    ratios = [
        r
        for a, b in PAIRS
        if (r := C.ratio(SUITE, case, timings, a, b, work=(work[a], work.get(b, 1))))
    ]
    return {
        "rows": rows,
        "ratios": ratios,
        "threshold": float(sh.threshold),
        "load_average": {"before": load_before, "after": load_after},
    }


def print_result(res: dict) -> None:
    C.print_table("shield: decisions (M decisions/s)", res["rows"], res["ratios"], ["map"])
    for row in res["rows"]:
        if "auroc" in row:
            C.say(f"  AUROC {row['engine']:<32} {row['auroc']:.3f} (batch {row['batch']:,})")
    for row in res["rows"]:
        if "cpu_s" in row:
            c = row["cpu_s"]
            C.say(
                f"  CPU per call {row['engine']:<30} {1e3 * c['median']:8.2f} ms "
                f"[{1e3 * c['min']:.2f}-{1e3 * c['max']:.2f}] (batch {row['batch']:,})"
            )
    if "load_average" in res:
        la = res["load_average"]
        C.say(f"  load average before {la['before']}, after {la['after']}")
