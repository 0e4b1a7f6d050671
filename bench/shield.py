"""Shield: decisions per second of the shield against a bare lookup and scikit-learn detectors.

A 2-D operating envelope (a synthetic wind-turbine power curve: wind speed vs power, with noise)
is the in-distribution data; a 64^2 map from the training states, calibrated (alpha = 0.01) on
20k held-out states. Engines, interleaved in one process:

- ``shield(x)``: the full decision (allow, energy, reason, p-value) and its A/A twin;
- ``shield.allow(x)``: the decision alone;
- ``jit(m.energy)``: a bare jitted lookup of the map's energy (no checks);
- ``IsolationForest.score_samples`` and ``KernelDensity.score_samples`` (scikit-learn, on
  standardised inputs, on smaller batches: rates are per state).

AUROC of each score on held-out normal states against faulty ones (curtailment, a shifted curve,
a sensor offset) is reported beside the rates.
"""

from __future__ import annotations

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
    ("shield(x)", "jit(m.energy)"),
    ("shield(x)", "IsolationForest.score_samples"),
    ("shield.allow(x)", "IsolationForest.score_samples"),
    ("shield(x)", "KernelDensity.score_samples"),
)


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
    engines = {
        "shield(x)": lambda: sh(big),
        "shield(x) (A/A)": lambda: sh(big),
        "shield.allow(x)": lambda: sh.allow(big),
        "jit(m.energy)": lambda: lookup(big),
    }
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
    timings = C.measure(engines, repeats or cfg["repeats"])
    for name, t in timings.items():
        for row in C.rows_of(SUITE, case, {name: t}, work[name], "decisions"):
            row["batch"] = work[name]
            if name in auroc:
                row["auroc"] = auroc[name]
            rows.append(row)
    ratios = [
        r
        for a, b in PAIRS
        if (r := C.ratio(SUITE, case, timings, a, b, work=(work[a], work.get(b, 1))))
    ]
    return {"rows": rows, "ratios": ratios, "threshold": float(sh.threshold)}


def print_result(res: dict) -> None:
    C.print_table("shield: decisions (M decisions/s)", res["rows"], res["ratios"], ["map"])
    for row in res["rows"]:
        if "auroc" in row:
            C.say(f"  AUROC {row['engine']:<32} {row['auroc']:.3f} (batch {row['batch']:,})")
