"""``groundstate demo``: the whole workflow on the embedded La Haute Borne wind-turbine data.

1. ingest: crawl a small "data lake" (three quarters of a year of 10-minute SCADA records of
   turbine R80711, ENGIE open data) into a (wind speed, power) energy map;
2. energy: the map's basin is the power curve the turbine proved;
3. shield: calibrate on the held-out quarter, check held-out normal states, impossible states,
   a fault and a broken sensor value;
4. langevin: sample the landscape with annealed chains and ask it a design question
   ("at 9 m/s, which power outputs are proven?"), filtered through the shield.

Everything is written to ``--out`` (default ``groundstate-demo/``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

DATA = "la_haute_borne.zip"
MEMBER = "la-haute-borne-data-2014-R80711.csv"


def register(subparsers) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole workflow on the embedded wind-turbine data",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--out", default="groundstate-demo", help="folder for the outputs")
    p.add_argument("--chains", type=int, default=4096, help="Langevin chains (default 4096)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the chains")
    p.set_defaults(func=run)


def data_path() -> Path:
    """The embedded La Haute Borne extract (ENGIE, Etalab Open Licence 2.0)."""
    return Path(str(importlib.resources.files("groundstate") / "data" / DATA))


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _split_lake(zip_path: Path, lake: Path, seed: int) -> np.ndarray:
    """Write 3/4 of the records (random rows) as the lake's CSV; return the other 1/4 as states."""
    with zipfile.ZipFile(zip_path) as z:
        text = z.read(MEMBER).decode("utf-8")
        for name in z.namelist():
            if name != MEMBER:
                (lake / name).write_bytes(z.read(name))
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    order = np.random.default_rng(seed).permutation(len(body))
    n_lake = 3 * len(body) // 4
    with open(lake / MEMBER, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(body[i] for i in np.sort(order[:n_lake]))
    ws, p = header.index("Ws_avg"), header.index("P_avg")

    def num(v: str) -> float:
        try:
            return float(v)
        except ValueError:
            return float("nan")

    held = [body[i] for i in order[n_lake:]]
    return np.array([[num(r[ws]), num(r[p])] for r in held])


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 on success."""
    import jax

    import energy
    import ingest
    import langevin

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    _say("groundstate demo: La Haute Borne turbine R80711, 2014, 10-minute SCADA records")
    _say("(ENGIE open data, Etalab Open Licence 2.0)\n")

    # 1. ingest -----------------------------------------------------------------------------
    _say("1. ingest: crawl the data lake into a (wind speed, power) energy map")
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        lake.mkdir()
        held = _split_lake(data_path(), lake, args.seed)
        m, report = ingest.ingest(
            lake,
            ["wind_speed:m/s", "power:kW"],
            profile="wind",
            bins=(51, 48),
            output=out / "wind.npz",
            progress=False,
            workers=1,
        )
    _say(
        f"   {report.rows_used} rows from {len(report.files_read)} file(s); "
        f"skipped {len(report.files_skipped)} file(s) without the variables"
    )
    _say(
        f"   map {m.shape[0]}x{m.shape[1]} over {m.names[0]} [{m.units[0]}] "
        f"{m.bounds[0][0]:g}..{m.bounds[0][1]:g}, {m.names[1]} [{m.units[1]}] "
        f"{m.bounds[1][0]:g}..{m.bounds[1][1]:g} -> {out / 'wind.npz'}\n"
    )

    # 2. the landscape ----------------------------------------------------------------------
    _say("2. energy: the basin of the map is the power curve the turbine proved")
    ws, pw = m.grid
    basin = pw[np.argmin(np.asarray(m.values), axis=1)]
    for w in (3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0):
        i = int(np.argmin(np.abs(ws - w)))
        _say(f"   {ws[i]:5.1f} m/s -> {basin[i]:7.0f} kW")
    _say()

    # 3. shield -----------------------------------------------------------------------------
    _say("3. shield: calibrate on held-out records (alpha = 0.01), then check new states")
    finite = np.all(np.isfinite(held), axis=1)
    states = held[finite]
    cal, test = states[: len(states) // 2], states[len(states) // 2 :]
    sh = energy.Shield.calibrate(m, cal, alpha=0.01)
    sh.save(out / "shield.npz")
    passed = float(np.mean(np.asarray(sh(test).allow)))
    _say(
        f"   threshold E = {float(sh.threshold):.2f} from {len(cal)} states; "
        f"held-out records allowed: {100 * passed:.1f}% (promise: >= 99% on average)"
    )
    probes = np.array([[9.0, 1000.0], [3.0, 1800.0], [12.0, 0.0], [9.0, np.nan], [40.0, 1000.0]])
    labels = [
        "9 m/s, 1000 kW (normal)",
        "3 m/s, 1800 kW (impossible)",
        "12 m/s, 0 kW (a fault or a stop)",
        "9 m/s, NaN kW (broken sensor)",
        "40 m/s, 1000 kW (never seen)",
    ]
    d = sh(probes)
    names = {int(r): r.name.lower().replace("_", " ") for r in energy.Reason}
    for label, a, r, e in zip(
        labels, np.asarray(d.allow), np.asarray(d.reason), np.asarray(d.energy), strict=True
    ):
        verdict = "allow" if a else f"BLOCK ({names[int(r)]})"
        _say(f"   {label:<34} E = {e:7.2f}  {verdict}")
    _say(f"   -> {out / 'shield.npz'}\n")

    # 4. langevin ---------------------------------------------------------------------------
    _say(f"4. langevin: {args.chains} annealed chains sample exp(-E)")
    key = jax.random.key(args.seed)
    t0 = time.perf_counter()
    res = langevin.sample(m, key, n_chains=args.chains, progress=False)
    x = np.asarray(res.positions)
    _say(
        f"   {res.n_anneal + res.n_steps} steps in {time.perf_counter() - t0:.1f} s "
        f"(compilation included); {res.n_diverged} chains diverged"
    )
    ok = np.all(np.isfinite(states), axis=1)
    for lo, hi in ((0, 5), (5, 10), (10, 15)):
        sel = (x[:, 0] >= lo) & (x[:, 0] < hi)
        dat = (states[ok, 0] >= lo) & (states[ok, 0] < hi)
        _say(
            f"   wind {lo:2d}-{hi:2d} m/s: share of chains {sel.mean():.3f} "
            f"(data {dat.mean():.3f}), median power {np.median(x[sel, 1]):6.0f} kW "
            f"(data {np.median(states[ok][dat, 1]):6.0f} kW)"
        )
    np.savetxt(out / "samples.csv", x, delimiter=",", header=",".join(m.names), comments="")

    _say("   design question: at 9 m/s, which power outputs has the turbine proven?")
    cond = langevin.sample(
        m, jax.random.fold_in(key, 1), n_chains=1024, fixed={"wind_speed": 9.0}, progress=False
    )
    allowed, _ = sh.filter(cond.positions)
    q = np.percentile(allowed[:, 1], [5, 50, 95])
    _say(
        f"   {len(allowed)}/1024 conditional samples pass the shield; power 5/50/95%: "
        f"{q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f} kW"
    )
    _say(f"\ndone in {time.perf_counter() - t_start:.1f} s; outputs in {out}/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    sys.exit(run(parser.parse_args(["demo", *sys.argv[1:]])))
