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

# Sizes: "smoke" for the CI test (seconds), "quick" (minutes), "full" (bench/README.md, Run time).
SIZES = ("smoke", "quick", "full")

# The time budget of a CPU run lives here, in one place: for a size, the entries that replace
# a suite's own (``suite -> table attribute of its module -> key -> value``), so that the sum of
# the suites fits the budget on a quiet 2-core CPU (< 2 min quick, < 15 min full; measured and
# estimated in bench/README.md, "Run time"). Only sizes and chain counts change; repeats never
# go below 5, so every median and range still comes from >= 5 interleaved rounds. A suite keeps
# every other entry of its own table. GPU and TPU runs use the suites' own sizes (their time
# goes to compilation, and their throughput needs the most chains).
PROFILES: dict[str, dict[str, dict[str, dict]]] = {
    "quick": {
        # at 60 MB the whole command took as long as 12 files of 1000 rows (its fixed cost,
        # measured 1.09x [0.84-1.38]): a smaller lake keeps that figure and writes faster
        "ingest": {"CMD_SIZES": {"mb": 20}},
    },
    "full": {
        # On 2 cores each of the 9 cases costs ~25 s of compilation (ours ULA and MALA ~6 s
        # each, BlackJAX and NumPyro 2-3 s each) and 1e5 chains x 10 steps (the suite's floor)
        # at d = 6 ~160 s: 1e3 and 1e4 chains per d (1e5 chain-steps per call), and the 1e6
        # chains of the child run (d = 4, 10 steps), keep 1e3 .. 1e6 in the plot.
        "chains": {
            "SIZES": {
                "chains": [1_000, 10_000],
                "work": 100_000,
                "million": {"d": 4, "chains": 1_000_000, "steps": 10},
            }
        },
        "surrogate": {"SIZES": {"steps": 200}},
        # 48 MB per format and 120 MB for the whole command (the suite's own 120 and 600 MB
        # come to an estimated 10 minutes on 2 cores); warm page cache; the size is in the case
        "ingest": {"SIZES": {"mb": 48}, "CMD_SIZES": {"mb": 120}},
    },
}
PROFILE_BACKENDS = ("cpu",)  # where PROFILES apply


def apply_profile(
    module, suite: str, size: str, profiles: dict | None = None, backend: str = "cpu"
) -> dict:
    """On the CPU, put ``PROFILES[size][suite]`` over the suite module's tables (a new dict per
    table: the suite's own stays untouched); returns what was changed, for the JSON.

    A key the suite's table does not have is an error naming it: a profile that silently did
    nothing would let a run take an hour."""
    plan = (PROFILES if profiles is None else profiles).get(size, {}).get(suite, {})
    if backend not in PROFILE_BACKENDS:
        return {}
    changed: dict[str, dict] = {}
    for attr, over in plan.items():
        table = getattr(module, attr, None)
        if not isinstance(table, dict) or size not in table:
            raise KeyError(f"bench profile: {suite}.{attr} has no size {size!r}")
        unknown = sorted(set(over) - set(table[size]))
        if unknown:
            raise KeyError(
                f"bench profile: {suite}.{attr}[{size!r}] has no key(s) {unknown} "
                f"(it has {sorted(table[size])})"
            )
        if "repeats" in over and over["repeats"] < 5:
            raise ValueError(f"bench profile: {suite}.{attr}[{size!r}] repeats < 5")
        setattr(module, attr, {**table, size: {**table[size], **over}})
        changed[attr] = over
    return changed


def summary(xs) -> dict:
    """Median, range and count of repeated measurements."""
    a = np.asarray(xs, np.float64)
    return {
        "median": float(np.median(a)),
        "min": float(a.min()),
        "max": float(a.max()),
        "n": len(a),
    }


def import_revision(rev: str, where, package: str = "energy"):
    """``package`` as it was at git revision ``rev`` of this checkout, imported under the name
    ``<package>_baseline`` (extracted once into ``where/<package>-<rev>``): the baseline a bench
    interleaves with today's code. Returns (module, the folder it was extracted to)."""
    import importlib.util

    dest = Path(where) / f"{package}-{rev}"
    if not (dest / package / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, package], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    name = f"{package}_baseline"
    spec = importlib.util.spec_from_file_location(
        name, dest / package / "__init__.py", submodule_search_locations=[str(dest / package)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod, str(dest)


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


def _load() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _cpu_now() -> float:
    """CPU seconds (user + system) of this process, all its threads, and of its children that
    have ended (the 1M-chain child, the ingest command, their pools)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


class SuiteClock:
    """Wall and CPU time of one suite, the load average around it, and what it would take on
    the same cores with nothing else running.

    On a machine shared with other work the wall time says little about a quiet one. Two
    estimates of the quiet time, and the larger is kept (``quiet_s``):

    - the CPU time (user + system, threads and ended children): a suite that keeps at least
      one core busy takes at most that much wall time on a quiet machine (threads spinning
      while they wait for a core only add to it); CPU spent in grandchildren that are never
      waited for (a pool's fork server) is not seen, hence the second estimate;
    - the wall time scaled by the share of the cores the run got: ``cores / max(cores, load)``
      with the mean of the 1-minute load average at the start and the end (a fair scheduler
      gives each runnable thread an equal share).
    """

    def __init__(self) -> None:
        self.load_start = _load()
        self.cpu0 = _cpu_now()
        self.t0 = time.perf_counter()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        cpu = _cpu_now() - self.cpu0
        end = _load()
        return {
            "seconds": wall,
            "cpu_s": cpu,
            "load_start": self.load_start,
            "load_end": end,
            "quiet_s": quiet_estimate(wall, cpu, self.load_start, end),
        }


def quiet_estimate(wall: float, cpu: float, load_start, load_end, cores: int | None = None):
    """The larger of the CPU time and the wall time scaled by the share of the cores the run
    got (see `SuiteClock`); the wall time when the load average is unknown."""
    cores = cores or os.cpu_count() or 1
    if not load_start or not load_end:
        return wall
    load = 0.5 * (load_start[0] + load_end[0])
    return max(cpu, wall * cores / max(cores, load))


def fmt_clock(res: dict) -> str:
    load = res.get("load_start") or [float("nan")]
    return (
        f"{res['seconds']:.0f} s wall, {res.get('cpu_s', float('nan')):.0f} s CPU, "
        f"load {load[0]:.1f}; quiet {res.get('quiet_s', float('nan')):.0f} s"
    )


def print_clocks(result: dict) -> None:
    """The time each suite took: wall, CPU (self + children), the load average around it and
    the estimate of the time on the same cores with nothing else running."""
    say(
        "\n== time per suite (wall; CPU = user + system of this process and its children; "
        "quiet = estimate on these cores unloaded)"
    )
    say(f"  {'suite':<12} {'wall s':>8} {'CPU s':>8} {'quiet s':>8}  load 1-min start -> end")
    tot = [0.0, 0.0, 0.0]
    for name, res in result["suites"].items():
        if "seconds" not in res:
            continue
        vals = [res["seconds"], res.get("cpu_s", 0.0), res.get("quiet_s", 0.0)]
        tot = [a + b for a, b in zip(tot, vals, strict=True)]
        a, b = res.get("load_start") or [float("nan")], res.get("load_end") or [float("nan")]
        say(
            f"  {name:<12} {vals[0]:>8.1f} {vals[1]:>8.1f} {vals[2]:>8.1f}  {a[0]:.1f} -> {b[0]:.1f}"
        )
    say(f"  {'all':<12} {tot[0]:>8.1f} {tot[1]:>8.1f} {tot[2]:>8.1f}")


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
