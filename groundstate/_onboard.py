"""Onboarding: one call from a plant's data lake to a verified capsule.

1. ingest: the lake is split, a held-out part by time (CSV logs with a time column: blocks of
   1/384 of the time span, about a day for a year of records; 3 of every 4 blocks train the map,
   the 4th alternately calibrates and tests the shield) or by file (files in name order, 1 in 8 calibrates, 1 in 8 tests); the
   training part is crawled into counts and the map (resumable: ``ingest``'s state sits in the
   work folder).
2. ground: the map; a surrogate (``energy.tnn.fit``) when asked or when the grid would be larger
   than the node cap, with its validation loss.
3. protect: the shield calibrated on the held-out calibration part at ``alpha``; its block rate
   on the held-out test part with a 95 % Clopper-Pearson interval; the profile's known-bad
   examples checked.
4. discover: the profile's discovery sweep (``langevin.sweep``), every reported state allowed
   by the shield.

The capsule is staged in ``OUTPUT.onboard/`` (the work folder, marked as groundstate's by a
``.groundstate-onboard.json`` file) and renamed to ``OUTPUT`` once ``capsule.json`` is written.
Running the same call again after an interruption resumes from the finished steps.
"""

from __future__ import annotations

import datetime as _dt
import importlib.resources
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import _capsule, _discovery

__all__ = ["onboard"]

MARKER = ".groundstate-onboard.json"
# Grid nodes above which a map is not built at the asked resolution (as energy's own limit,
# 2**28 nodes): the bins are lowered to fit and a surrogate carries the detail.
NODE_CAP = 2**28
# Held-out states are counted through ingest on a grid `_REFINE` times finer than the map (the
# public ingest API returns counts, not rows), capped at `_HELD_CELLS` cells in all.
_REFINE = 16
_HELD_CELLS = 1 << 22
# Names a time column goes by (case-insensitive, units in brackets stripped).
TIME_NAMES = ("time", "date_time", "datetime", "timestamp", "date", "time_stamp", "t_utc")
# Time blocks over the span: 3/4 train, 1/8 calibrate, 1/8 test. Short blocks interleave the
# held-out part with the training part over every season (a year's span: blocks of ~23 h); with
# 48 blocks (a week each) the La Haute Borne test rows were blocked at 2.6 % for alpha = 1 %: the
# weather of different weeks is not exchangeable.
_N_BLOCKS = 384
_DELIMS = (",", ";", "\t", "|")


# ---------------------------------------------------------------------------------- the split
def _parse_time(text: str) -> float | None:
    text = text.strip().strip('"')
    if not text:
        return None
    try:
        v = float(text)
        return v if math.isfinite(v) else None
    except ValueError:
        pass
    try:
        t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


def _csv_layout(path: str):
    """``(preamble lines, header line, delimiter, time column index)`` or None (no time)."""
    pre: list[bytes] = []
    with open(path, "rb") as f:
        for raw in f:
            text = raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
            if not text or text.startswith("#"):
                pre.append(raw)
                continue
            counts = {d: text.count(d) for d in _DELIMS}
            delim = max(_DELIMS, key=lambda d: counts[d])
            fields = text.split(delim) if counts[delim] else text.split()
            for i, field in enumerate(fields):
                name = field.strip().strip('"').split("[")[0].split("(")[0].strip().lower()
                if name in TIME_NAMES:
                    return pre, raw, (delim if counts[delim] else None), i
            return None
    return None


def _time_split(path: str, layout, dest: dict[str, Path], rel: str) -> dict:
    """Write the rows of one CSV log into train/cal/test parts by time block; return counts."""
    pre, header, delim, col = layout
    times: list[float | None] = []
    lines: list[bytes] = []
    with open(path, "rb") as f:
        seen = 0
        for raw in f:
            if seen < len(pre) + 1:  # the preamble and the header, already kept
                seen += 1
                continue
            lines.append(raw)
            text = raw.decode("utf-8", errors="replace")
            fields = text.rstrip("\r\n").split(delim) if delim else text.split()
            times.append(_parse_time(fields[col]) if col < len(fields) else None)
    t = np.array([np.nan if v is None else v for v in times], dtype=np.float64)
    ok = np.isfinite(t)
    part = np.zeros(len(lines), dtype=np.int8)  # 0 train, 1 cal, 2 test
    span = (float(t[ok].min()), float(t[ok].max())) if ok.any() else None
    if span is not None and span[1] > span[0]:
        width = (span[1] - span[0]) / _N_BLOCKS
        block = np.minimum(((t[ok] - span[0]) // width).astype(np.int64), _N_BLOCKS - 1)
        held = block % 4 == 3
        part[np.flatnonzero(ok)[held]] = np.where((block[held] // 4) % 2 == 0, 1, 2)
    counts = {}
    for k, name in enumerate(("train", "cal", "test")):
        out = dest[name] / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "wb") as g:
            g.writelines(pre)
            g.write(header if header.endswith(b"\n") else header + b"\n")
            g.writelines(line for line, p in zip(lines, part, strict=True) if p == k)
        os.replace(tmp, out)
        counts[name] = int(np.sum(part == k))
    return {
        "file": path,
        "rows": counts,
        "rows_without_time": int(np.sum(~ok)),
        "time_span": None
        if span is None
        else [_dt.datetime.fromtimestamp(s, _dt.timezone.utc).isoformat() for s in span],
        "block_seconds": None if span is None else (span[1] - span[0]) / _N_BLOCKS,
    }


def _split(roots: list[str], work: Path, exclude: list[str], say) -> dict:
    """Split the lake into train / cal / test roots (resumable: ``split.json`` marks it done)."""
    import ingest

    record = work / "split.json"
    if record.exists():
        return json.loads(record.read_text())
    files, skipped = ingest.discover(roots, exclude=exclude)
    dest = {k: work / "split" / k for k in ("train", "cal", "test")}
    for p in dest.values():
        p.mkdir(parents=True, exist_ok=True)
    by_time, whole = [], []
    for i, (path, _size) in enumerate(files):
        try:
            kind = ingest.detect(path)
        except Exception:  # unreadable: the crawl reports it with its reason
            kind = None
        layout = _csv_layout(path) if kind == "text" else None
        if layout is not None:
            by_time.append(_time_split(path, layout, dest, f"{i:05d}-{Path(path).name}"))
        else:
            whole.append(path)
    roots_of = {k: [str(dest[k])] if by_time else [] for k in dest}
    n = len(whole)
    for j, path in enumerate(whole):
        # By file, in name order: 1 in 8 calibrates, 1 in 8 tests (with few files: the last
        # two, when the time split gives no held-out rows).
        r = j % 8
        if not by_time and n < 8:
            r = 7 if j == n - 1 else (6 if j == n - 2 else 0)
        roots_of["cal" if r == 6 else "test" if r == 7 else "train"].append(path)
    rows_time = {k: sum(f["rows"][k] for f in by_time) for k in ("train", "cal", "test")}
    if by_time and rows_time["cal"] and rows_time["test"]:
        how = "time"
    elif roots_of["cal"] and roots_of["test"] and not by_time:
        how = "file"
    elif by_time:
        how = "time"
    else:
        raise ValueError(
            f"{', '.join(roots)}: cannot hold out data for the shield: {n} file(s) without a "
            f"time column (need a CSV with one of the columns {list(TIME_NAMES)}, or 3 files "
            f"or more)"
        )
    spans = [f["time_span"] for f in by_time if f["time_span"]]
    out = {
        "by": how,
        "roots": roots_of,
        "files": len(files),
        "files_skipped_by_name": [[p, r] for p, r in skipped],
        "bytes": int(sum(s for _, s in files)),
        "time_files": by_time,
        "time_span": [min(s[0] for s in spans), max(s[1] for s in spans)] if spans else None,
        "rule": (
            f"time: {_N_BLOCKS} equal blocks of the span; blocks 4k+3 held out, alternately "
            f"calibration and test; the rest trains the map"
            if how == "time"
            else "file: files in name order; 1 in 8 calibrates, 1 in 8 tests"
        ),
    }
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, record)
    return out


# ---------------------------------------------------------------------------------- held out
def _held_states(roots, variables, profile, m, work: Path, name: str, workers, progress):
    """Count a held-out part on a grid finer than the map; return ``(states, outside, report)``.

    ``states`` are the centres of the fine cells, repeated by their counts (within 1/(2 r) of a
    map cell of the recorded values); ``outside`` counts held-out rows outside the map's bounds
    (the shield blocks those whatever the threshold).
    """
    import ingest

    cache = work / f"{name}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            return z["states"], int(z["outside"]), json.loads(str(z["report"]))
    d = m.ndim
    r = max(1, min(_REFINE, int((_HELD_CELLS ** (1.0 / d)) / max(m.shape))))
    bins = tuple((n - 1) * r + 1 for n in m.shape)
    try:
        c = ingest.count(
            roots,
            variables,
            profile=profile,
            bins=bins,
            bounds=list(m.bounds),
            workers=workers,
            state=str(work / f"{name}.ingest-state"),
            progress=progress,
        )
        counts, report = c.counts, c.report.to_dict()
    except ingest.EmptyCrawlError as err:
        counts, report = np.zeros(bins, dtype=np.int64), err.report.to_dict()
    axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(m.bounds, bins, strict=True)]
    idx = np.nonzero(counts)
    reps = counts[idx]
    centres = np.stack([axes[i][idx[i]] for i in range(d)], axis=1) if len(reps) else None
    states = np.repeat(centres, reps, axis=0) if centres is not None else np.zeros((0, d))
    outside = int(report["rows_dropped"].get("outside bounds", 0))
    report["refine"] = r
    tmp = work / f"{name}.tmp.npz"
    np.savez(tmp, states=states, outside=np.int64(outside), report=np.str_(json.dumps(report)))
    os.replace(tmp, cache)
    state_dir = work / f"{name}.ingest-state"
    if state_dir.exists():
        shutil.rmtree(state_dir)
    return states, outside, report


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for ``k`` successes in ``n`` trials."""
    from scipy.stats import beta

    if n == 0:
        return (0.0, 1.0)
    a = (1.0 - level) / 2.0
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return lo, hi


# ---------------------------------------------------------------------------------- folders
def _prepare(output: Path, work: Path, config: dict, force: bool, say) -> None:
    """Check the output and the work folder; (re)create the work folder with its marker."""
    if output.exists() or output.is_symlink():
        if not force:
            raise ValueError(f"{output}: exists; choose another output or pass --force")
        if not output.is_dir() or not (output / _capsule.MANIFEST).is_file():
            raise ValueError(
                f"{output}: exists and is not a capsule: --force replaces only a capsule"
            )
        _capsule.verify(output)  # only a valid capsule is ever replaced
    marker = work / MARKER
    if work.exists() or work.is_symlink():
        if not marker.is_file() or work.is_symlink():
            raise ValueError(
                f"{work}: exists and is not an onboarding work folder of groundstate; "
                f"move it away or choose another output"
            )
        try:
            old = json.loads(marker.read_text())
        except json.JSONDecodeError:
            old = None
        if old == config:
            say(f"resuming from {work}")
            return
        say(f"{work}: left by an onboarding with other settings; starting again")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text(json.dumps(config, indent=1, sort_keys=True))


def _replace(stage: Path, output: Path) -> None:
    """Rename the staged capsule to ``output`` (a verified old capsule there is replaced)."""
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, old)
        try:
            os.replace(stage, output)
        except OSError:
            os.replace(old, output)
            raise
        shutil.rmtree(old)
    else:
        os.replace(stage, output)


def _profile_toml(profile) -> str | None:
    """The profile's TOML text (a shipped profile or the user's file)."""
    if profile is None:
        return None
    path = Path(profile.path) if getattr(profile, "path", None) else None
    if path is None or not path.is_file():
        path = Path(str(importlib.resources.files("ingest") / "profiles" / f"{profile.name}.toml"))
    return path.read_text(encoding="utf-8")


def _version() -> str:
    from . import __version__

    return __version__


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.1f} s"


# ---------------------------------------------------------------------------------- onboard
def onboard(
    lake,
    variables,
    *,
    output: str | os.PathLike,
    profile: str | os.PathLike | None = None,
    alpha: float = 0.01,
    bins: int | tuple[int, ...] = 64,
    bounds=None,
    smoothing: float = 1.0,
    workers: int | None = None,
    surrogate: bool | dict = False,
    objective: str | Callable | None = None,
    domain: str | None = None,
    licence: str | None = None,
    seed: int = 0,
    n_chains: int = 256,
    force: bool = False,
    plots: bool = True,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
):
    """Onboard a data lake: ingest, ground, protect, discover; write and load the capsule.

    Args:
        lake: a directory, file or glob pattern (or a list of them).
        variables: ``"NAME[:UNIT]"`` strings, in axis order (as for ``ingest``).
        output: the capsule folder to write (atomically: staged in ``OUTPUT.onboard/``).
        profile: ``"wind"``, ``"grid"``, ``"casting"``, a TOML path, or None.
        alpha: the shield's false-block level on held-out normal states.
        bins, bounds, smoothing, workers: as for ``ingest.ingest``.
        surrogate: also fit a tnn surrogate (also done when the grid exceeds the node cap); a
            dict gives ``energy.tnn.fit`` settings (``{"steps": 500, "members": 4}``).
        objective: ``"module:function"`` or a function ``(d,) -> scalar``: the discovery asks
            for the lowest ``E + objective`` at each value of the swept variable.
        domain: a name for the domain (default: the profile's name, else the output's).
        licence: the data's licence (SPDX identifier), recorded in the manifest.
        seed: seed of the surrogate and the discovery chains.
        n_chains: chains per discovery setting.
        force: replace an existing valid capsule at ``output``.
        plots: draw the pictures (needs matplotlib, the ``plot`` extra; skipped with a note
            when it is missing).
        progress: progress bars (None: on a terminal only).
        say: where the one-line step reports go (default: stdout).

    Returns:
        The loaded, verified :class:`groundstate.Capsule`.

    Example:
        >>> c = groundstate.onboard("lake/", ["wind_speed:m/s", "power:kW"], profile="wind",
        ...                         alpha=0.01, output="wind.capsule")  # doctest: +SKIP
    """
    import jax

    import energy
    import ingest

    say = say or (lambda s: print(s, flush=True))
    t_all = time.perf_counter()
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    roots = [lake] if isinstance(lake, str | os.PathLike) else list(lake)
    roots = [os.fspath(r) for r in roots]
    variables = [v if isinstance(v, str) else ":".join(v) for v in variables]
    if not variables:
        raise ValueError("at least one variable is needed (NAME[:UNIT])")
    prof = ingest.load_profile(profile) if profile is not None else None
    specs = ingest.resolve_vars(variables, prof)
    d = len(specs)
    shape = (int(bins),) * d if np.ndim(bins) == 0 else tuple(int(b) for b in bins)
    if len(shape) != d:
        raise ValueError(f"bins: {len(shape)} values for {d} variables")
    fit_surrogate = bool(surrogate)
    fit_kwargs = dict(surrogate) if isinstance(surrogate, dict) else {}
    if math.prod(shape) > NODE_CAP:
        n = int(NODE_CAP ** (1.0 / d))
        say(
            f"a {'x'.join(map(str, shape))} grid exceeds the node cap ({NODE_CAP}): the map "
            f"uses {n} bins per axis and a surrogate is fitted"
        )
        shape, fit_surrogate = (n,) * d, True
    if isinstance(objective, str):
        objective_name, objective_fn = objective, _discovery.load_objective(objective)
    elif objective is not None:
        objective_name = getattr(objective, "__name__", "objective")
        objective_fn = objective
    else:
        objective_name = objective_fn = None
    output = Path(output)
    work = output.with_name(output.name + ".onboard")
    config = {
        "lake": sorted(os.path.abspath(r) for r in roots),
        "variables": variables,
        "profile": None if profile is None else os.fspath(profile),
        "bins": list(shape),
        "bounds": None if bounds is None else [list(map(float, b)) for b in bounds],
        "smoothing": float(smoothing),
        "surrogate": fit_kwargs if fit_surrogate else False,
    }
    _prepare(output, work, config, force, say)
    stage = work / "capsule"
    if stage.exists():  # what a crash left half-written: rebuilt from the finished steps
        shutil.rmtree(stage)
    stage.mkdir()

    # 1. ingest ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    exclude = [str(work), str(output)]
    split = _split(roots, work, exclude, say)
    map_path = work / "map.npz"
    if map_path.exists():
        m = energy.load(str(map_path))
        report = m.provenance
    else:
        m, rep = ingest.ingest(
            split["roots"]["train"],
            variables,
            output=str(map_path),
            profile=prof,
            bins=shape,
            bounds=bounds,
            smoothing=smoothing,
            workers=workers,
            progress=progress,
        )
        report = m.provenance
    cal_x, cal_out, cal_rep = _held_states(
        split["roots"]["cal"], variables, prof, m, work, "cal", workers, progress
    )
    test_x, test_out, test_rep = _held_states(
        split["roots"]["test"], variables, prof, m, work, "test", workers, progress
    )
    dropped = report.get("rows_dropped", {})
    say(
        f"1/4 ingest   {_fmt_time(time.perf_counter() - t0)}: {split['files']} files "
        f"({split['bytes'] / 1e6:.1f} MB), held out by {split['by']}; map from "
        f"{report.get('rows_used', 0)} rows ({sum(dropped.values())} dropped), calibration "
        f"{len(cal_x) + cal_out} rows, test {len(test_x) + test_out} rows"
    )

    # 2. ground ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    key = jax.random.key(seed)
    m.save(str(stage / "map.npz"))
    sur, sur_meta = None, None
    if fit_surrogate:
        sur_dir = work / "surrogate"
        sur = None
        if (sur_dir / "tnn.json").exists():
            try:
                sur = energy.tnn.load(str(sur_dir))
            except (ValueError, OSError):
                sur = None
        if sur is None:
            if sur_dir.exists():
                shutil.rmtree(sur_dir)
            sur = energy.tnn.fit(m, jax.random.fold_in(key, 1), progress=progress, **fit_kwargs)
            sur.save(str(sur_dir))
        shutil.copytree(sur_dir, stage / "surrogate")
        prov = sur.provenance
        cfg = sur.config
        sur_meta = {
            "kind": "tnn ensemble",
            "members": int(sur.members),
            "architecture": {
                k: getattr(cfg, k)
                for k in ("width", "depth", "members")
                if isinstance(getattr(cfg, k, None), int)
            },
            "best_validation_loss": prov.get("best_val_loss"),
            "validation_loss_unit": "mean squared energy error / var(E)",
            "steps_run": prov.get("steps_run"),
        }
    axes = ", ".join(
        f"{n} [{u}] {lo:g}..{hi:g}"
        for n, u, (lo, hi) in zip(m.names, m.units, m.bounds, strict=True)
    )
    extra = ""
    if sur_meta:
        vl = sur_meta["best_validation_loss"]
        extra = f"; surrogate, validation loss {np.min(vl):.3g}" if vl else "; surrogate"
    say(
        f"2/4 ground   {_fmt_time(time.perf_counter() - t0)}: map "
        f"{'x'.join(map(str, m.shape))} over {axes}{extra}"
    )

    # 3. protect --------------------------------------------------------------------------
    t0 = time.perf_counter()
    need = math.ceil(1.0 / alpha - 1.0)
    n_cal = len(cal_x) + cal_out
    if n_cal < need:
        raise ValueError(
            f"{n_cal} held-out calibration rows are too few for alpha={alpha} (needs {need}): "
            f"use a larger alpha or more data"
        )
    # A held-out row outside the map's bounds is blocked whatever the threshold: its score is
    # +inf. It enters the calibration as a non-finite state, which the shield scores +inf too.
    cal_all = np.concatenate([cal_x, np.full((cal_out, m.ndim), np.inf)], axis=0)
    try:
        sh = energy.Shield.calibrate(
            m,
            cal_all,
            alpha=alpha,
            provenance={"held_out": "calibration part of the onboarding split", "by": split["by"]},
        )
    except ValueError as err:
        raise ValueError(f"shield calibration on the held-out part of {roots}: {err}") from err
    sh.save(str(stage / "shield.npz"))
    if len(test_x):
        blocked_in = int(np.sum(~np.asarray(sh(test_x).allow)))
    else:
        blocked_in = 0
    n_test = len(test_x) + test_out
    blocked = blocked_in + test_out
    lo_ci, hi_ci = clopper_pearson(blocked, n_test)
    rate = blocked / n_test if n_test else float("nan")
    bad = _discovery.check_known_bad(m, sh, prof)
    n_bad_blocked = sum(b["blocked"] for b in bad)
    cal = sh.provenance["calibration"]
    say(
        f"3/4 protect  {_fmt_time(time.perf_counter() - t0)}: threshold E = "
        f"{cal['threshold']:.3f} (rank {cal['rank']} of {cal['n']}, alpha {alpha}); held-out "
        f"test blocked {blocked}/{n_test} = {100 * rate:.2f}% (95% interval "
        f"{100 * lo_ci:.2f}..{100 * hi_ci:.2f}%); known-bad blocked {n_bad_blocked}/{len(bad)}"
    )
    for b in bad:
        if not b["blocked"]:
            say(f"   WARNING: known-bad state allowed: {b['why']} {b['state']}")

    # 4. discover -------------------------------------------------------------------------
    t0 = time.perf_counter()
    disc = _discovery.run(
        m,
        sh,
        jax.random.fold_in(key, 2),
        profile=prof,
        objective=objective_fn,
        objective_name=objective_name,
        n_chains=n_chains,
        progress=progress,
    )
    (stage / "discovery.csv").write_text(_discovery.table_csv(disc))
    found = [r for r in disc["rows"] if r["state"] is not None]
    say(
        f"4/4 discover {_fmt_time(time.perf_counter() - t0)}: {disc['title']}: "
        f"{len(found)}/{len(disc['rows'])} settings with an allowed state"
    )
    for r in disc["rows"]:
        if r["state"] is not None:
            cells = ", ".join(
                f"{n} {v:.4g}" for n, v in zip(disc["names"], r["state"], strict=True)
            )
            say(f"   {cells} (E {r['energy']:.2f})")

    # the capsule -------------------------------------------------------------------------
    text = _profile_toml(prof)
    if text is not None:
        (stage / "profile.toml").write_text(text, encoding="utf-8")
    pictures = []
    if plots:
        from . import _plot

        try:
            _plot.require()
        except ImportError as err:
            say(f"   pictures skipped: {err}")
        else:
            _plot.landscape(m, stage / "landscape.png", shield=sh, discovery=disc, known_bad=bad)
            _plot.ingest_summary(m, report, stage / "ingest.png")
            pictures = ["landscape.png", "ingest.png"]
    held = {
        "by": split["by"],
        "rule": split["rule"],
        "calibration_rows": n_cal,
        "test_rows": n_test,
        "test_blocked": blocked,
        "test_blocked_outside_bounds": test_out,
        "test_block_rate": rate,
        "test_block_rate_interval_95": [lo_ci, hi_ci],
        "quantisation": (
            f"held-out rows are read through ingest.count on a grid {cal_rep['refine']}x finer "
            f"than the map's: each state is the centre of its fine cell"
        ),
    }
    manifest = {
        "groundstate_version": _version(),
        "versions": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "domain": domain or (prof.name if prof else output.name),
        "profile": prof.name if prof else None,
        "licence": licence,
        "variables": [
            {"name": n, "unit": u, "bounds": [float(lo), float(hi)], "bins": int(k)}
            for n, u, (lo, hi), k in zip(m.names, m.units, m.bounds, m.shape, strict=True)
        ],
        "provenance": {
            "lake": config["lake"],
            "files": split["files"],
            "bytes": split["bytes"],
            "files_read": len(report.get("files_read", [])),
            "files_skipped": len(report.get("files_skipped", [])),
            "rows_used": report.get("rows_used"),
            "rows_dropped": report.get("rows_dropped", {}),
            "time_span": split["time_span"],
            "held_out": held,
        },
        "shield": {
            "alpha": float(alpha),
            "n": int(cal["n"]),
            "rank": int(cal["rank"]),
            "threshold": float(cal["threshold"]),
            "held_out_block_rate": rate,
            "held_out_block_rate_interval_95": [lo_ci, hi_ci],
            "known_bad": bad,
        },
        "surrogate": sur_meta,
        "discovery": {k: disc[k] for k in ("title", "goal", "condition", "target", "objective")},
        "pictures": pictures,
        "settings": {"seed": int(seed), "n_chains": int(n_chains), **config},
    }
    (stage / "README.md").write_text(_card(manifest, disc), encoding="utf-8")
    _capsule.write_manifest(stage, manifest)
    _replace(stage, output)
    shutil.rmtree(work)
    c = _capsule.load(output)
    size = sum(e["size"] for e in c.meta["files"].values())
    say(
        f"capsule: {output} ({len(c.meta['files']) + 1} files, {size / 1e6:.2f} MB) in "
        f"{_fmt_time(time.perf_counter() - t_all)}"
    )
    return c


def _versions() -> dict[str, str]:
    import jax

    out = {"python": sys.version.split()[0], "numpy": np.__version__, "jax": jax.__version__}
    return out


def _card(meta: dict, disc: dict) -> str:
    """The capsule's README.md: what, from which data, how well."""
    prov, sh = meta["provenance"], meta["shield"]
    held = prov["held_out"]
    lines = [
        f"# Capsule: {meta['domain']}",
        "",
        f"Grounded by groundstate {meta['groundstate_version']} on {meta['created']}"
        + (f", profile `{meta['profile']}`." if meta["profile"] else "."),
        "",
        "## Variables",
        "",
        "| name | unit | bounds | nodes |",
        "|---|---|---|---|",
    ]
    for v in meta["variables"]:
        lines.append(
            f"| {v['name']} | {v['unit']} | {v['bounds'][0]:g} .. {v['bounds'][1]:g} | {v['bins']} |"
        )
    span = prov["time_span"]
    lines += [
        "",
        "## Data",
        "",
        f"{prov['files']} files ({prov['bytes'] / 1e6:.1f} MB) under {', '.join(prov['lake'])}"
        + (f", {span[0]} to {span[1]}" if span else "")
        + f"; licence: {meta['licence'] or 'not stated'}.",
        f"The map counts {prov['rows_used']} rows; dropped: "
        + (", ".join(f"{k} {v}" for k, v in prov["rows_dropped"].items()) or "none")
        + ".",
        f"Held out by {held['by']} ({held['rule']}): {held['calibration_rows']} rows calibrate "
        f"the shield, {held['test_rows']} test it.",
        "",
        "## How well",
        "",
        f"Shield: threshold E = {sh['threshold']:.4g} at alpha = {sh['alpha']} ({sh['n']} "
        f"calibration states). On the held-out test rows it blocks "
        f"{100 * held['test_block_rate']:.2f}% (95% interval "
        f"{100 * held['test_block_rate_interval_95'][0]:.2f} .. "
        f"{100 * held['test_block_rate_interval_95'][1]:.2f}%); the promise is at most "
        f"{100 * sh['alpha']:g}% on average for states like the calibration ones.",
        "",
    ]
    if sh["known_bad"]:
        lines += ["Known-bad states of the profile:", ""]
        for b in sh["known_bad"]:
            verdict = f"blocked ({b['reason']})" if b["blocked"] else "ALLOWED"
            lines.append(f"- {b['why']}: {verdict}")
        lines.append("")
    if meta["surrogate"]:
        lines += [f"Surrogate: {meta['surrogate']}", ""]
    lines += [f"## Discovery: {disc['title']}", ""]
    names = disc["names"]
    lines += ["| " + " | ".join([*names, "energy"]) + " |", "|" + "---|" * (len(names) + 1)]
    for r in disc["rows"]:
        if r["state"] is None:
            lines.append(f"| {r['condition']:.4g} | no allowed state |" + " |" * (len(names) - 1))
        else:
            cells = [f"{v:.4g}" for v in r["state"]]
            lines.append("| " + " | ".join([*cells, f"{r['energy']:.3f}"]) + " |")
    lines.append("")
    for p in meta["pictures"]:
        lines += [f"![{p}]({p})", ""]
    lines += [
        "Load it with `groundstate.load(PATH)`; check it with `groundstate capsule verify PATH`.",
        "",
    ]
    return "\n".join(lines)
