"""Shared machinery of the benchmark suites: sizes, interleaved timing, machine facts, JSON.

Every suite builds a dict of engines (name -> a callable of no argument that runs the work once
and returns something `jax.block_until_ready` accepts), and `measure` times them:

1. cold: the first call of each engine (tracing, compilation and one run);
2. warm-up: one more call, untimed;
3. ``repeats`` rounds; in each round every engine runs once, in a new random order (seeded), so
   ours and the peers alternate, a burst of load from other processes hits all alike, and no
   engine always runs right after the same other one. Every round's time is kept.

compile_s = cold - median(warm). A ratio ours/peer is computed per round (the peer's time over
ours in the same round) and reported as median and range (min-max) over the rounds. The A/A
engine is ours run a second time under another name: its ratio to ours is the noise floor of
the run.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata as _md
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SCHEMA = 1  # version of the JSON written by `write_result`

# Sizes: "smoke" for the CI test (seconds), "quick" (< 2 min on 2 cores), "full" (< 15 min).
SIZES = ("smoke", "quick", "full")


def optional(module: str):
    """The module, or None when it is not installed (a peer's row then says so)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def skipped(suite: str, case: dict, engine: str, why: str) -> dict:
    """A row for an engine that did not run, with the reason."""
    return {"suite": suite, "case": case, "engine": engine, "skipped": why}


def _block(out):
    """Wait for a result: jax arrays block until ready, anything else is already computed."""
    try:
        import jax

        return jax.block_until_ready(out)
    except ImportError:  # pragma: no cover - jax is a dependency
        return out


@dataclass
class Timing:
    """Times of one engine: the cold call and every timed round (seconds)."""

    cold_s: float
    rounds_s: list[float] = field(default_factory=list)
    error: str | None = None


def measure(engines: dict[str, Callable[[], object]], repeats: int) -> dict[str, Timing]:
    """Time engines cold, then ``repeats`` interleaved rounds; engines that fail are kept with
    their error (and left out of the rounds)."""
    out: dict[str, Timing] = {}
    live: dict[str, Callable[[], object]] = {}
    for name, fn in engines.items():
        try:
            t0 = time.perf_counter()
            _block(fn())
            cold = time.perf_counter() - t0
            _block(fn())  # warm-up: caches, allocator, page faults
            out[name], live[name] = Timing(cold), fn
        except Exception as err:  # noqa: BLE001 - reported in the row (e.g. out of memory)
            out[name] = Timing(float("nan"), error=f"{type(err).__name__}: {err}"[:300])
    names = list(live)
    order_rng = np.random.default_rng(0)  # the same orders in every run
    for _ in range(repeats):
        # A new random order each round: ours and the peers alternate, and no engine always
        # follows the same one (a peer whose threads spin after a parallel loop would otherwise
        # always slow down the engine after it).
        for i in order_rng.permutation(len(names)):
            name = names[i]
            t0 = time.perf_counter()
            _block(live[name]())
            out[name].rounds_s.append(time.perf_counter() - t0)
    return out


def rows_of(suite: str, case: dict, timings: dict[str, Timing], work: float, unit: str) -> list:
    """One JSON row per engine: every round, median and range of the rate ``work / seconds``."""
    rows = []
    for name, t in timings.items():
        row = {"suite": suite, "case": case, "engine": name, "work": work, "unit": unit}
        if t.error:
            row["error"] = t.error
        else:
            rs = np.asarray(t.rounds_s)
            med = float(np.median(rs))
            row.update(
                cold_s=t.cold_s,
                compile_s=max(t.cold_s - med, 0.0),
                rounds_s=[float(v) for v in rs],
                median_s=med,
                rate_median=work / med,
                rate_min=work / float(rs.max()),
                rate_max=work / float(rs.min()),
            )
        rows.append(row)
    return rows


def ratio(suite: str, case: dict, timings: dict[str, Timing], ours: str, peer: str, **extra):
    """Speed of ``ours`` over ``peer`` per round (peer time / our time, both scaled by their
    work in ``extra['work']`` when the engines ran different sizes): median and range."""
    a, b = timings.get(ours), timings.get(peer)
    if a is None or b is None or a.error or b.error or not a.rounds_s:
        return None
    work = extra.pop("work", (1.0, 1.0))  # (work of ours, work of peer) per call
    per = [(tb / work[1]) / (ta / work[0]) for ta, tb in zip(a.rounds_s, b.rounds_s, strict=True)]
    return {
        "suite": suite,
        "case": case,
        "ours": ours,
        "peer": peer,
        "median": float(np.median(per)),
        "min": float(min(per)),
        "max": float(max(per)),
        "rounds": per,
        **extra,
    }


# ----------------------------------------------------------------------------- machine facts
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


PEERS = ("blackjax", "numpyro", "scikit-learn", "numba", "boost-histogram", "interpax")


def machine() -> dict:
    """Facts about this run: host, CPU, devices, versions, load average."""
    import jax

    devs = jax.devices()
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "backend": jax.default_backend(),
        "device_kind": devs[0].device_kind,
        "device_count": len(devs),
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("groundstate", "jax", "jaxlib", "numpy", "scipy", *PEERS)
        },
        "git_commit": _git_commit(),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def write_result(result: dict, out_dir: Path) -> Path:
    """Write one run's JSON under ``out_dir`` with a new name (never overwrites a file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    m = result["machine"]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{m['backend']}-{m['host']}"
    path = out_dir / f"{base}.json"
    k = 1
    while path.exists():
        path = out_dir / f"{base}-{k}.json"
        k += 1
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float) + "\n")
    os.replace(tmp, path)
    return path


def say(msg: str = "") -> None:
    print(msg, flush=True)


def fmt_rate(row: dict) -> str:
    """'12.3 [11.0-13.1]' in millions per second, or the reason the engine has no rate."""
    if "skipped" in row:
        return f"skipped: {row['skipped']}"
    if "error" in row:
        return f"failed: {row['error'][:60]}"
    return (
        f"{row['rate_median'] / 1e6:.4g} [{row['rate_min'] / 1e6:.3g}-{row['rate_max'] / 1e6:.3g}]"
    )


def fmt_ratio(r: dict | None) -> str:
    if not r:
        return "-"
    return f"{r['median']:.3g}x [{r['min']:.3g}-{r['max']:.3g}]"


def print_table(title: str, rows: list[dict], ratios: list[dict], case_keys: list[str]) -> None:
    """A plain table: case, engine, M items/s median [range], compile s; then the ratios."""
    say(f"\n== {title}")
    for row in rows:
        case = " ".join(f"{k}={row['case'][k]}" for k in case_keys if k in row["case"])
        comp = f"  compile {row['compile_s']:.2f} s" if "compile_s" in row else ""
        say(f"  {case:<28} {row['engine']:<30} {fmt_rate(row)} M {row.get('unit', '')}/s{comp}")
    for r in ratios:
        case = " ".join(f"{k}={r['case'][k]}" for k in case_keys if k in r["case"])
        say(f"  {case:<28} {r['ours']} / {r['peer']}: {fmt_ratio(r)}")
