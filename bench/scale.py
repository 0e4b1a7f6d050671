"""Scale: chain-steps per second on one device, and a thinned run of many chains in bounded memory.

    python bench/scale.py [--quick]          # prints the JSON, writes bench/results/scale.json

Two measurements, each in a child process of its own (a fresh interpreter, so that its peak
resident memory is the run's alone):

1. ``throughput``: ULA on a 2-D map (256^2 nodes), fixed temperature, no recording: million
   chain-steps per second on this process's one device, compilation excluded (a warm call).
2. ``thinned``: ``langevin.sample(..., thin=k, trace=DIR)`` with the recorded draws streamed to
   files chunk by chunk; peak RSS at two trace lengths (the same chains), so that what grows with
   the number of recorded draws is measured, not assumed. The full size runs 1e6 chains with 10
   and 40 recorded draws (1000 draws write 12 GB of trace and take too long on 2 shared cores);
   the peak for 1000 draws is extrapolated from the two points (slope per draw and intercept in
   the JSON).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    # throughput: chains, steps; thinned: chains, recorded draw counts (two), thin
    "quick": {"tp": (32_768, 300), "thin": (100_000, (20, 80), 2)},
    # 1e6 chains at two trace lengths; 1000 draws (8 GB of trace file) is then extrapolated from
    # the measured slope per draw (~0: a chunk of at most 2^24 numbers is in memory at a time)
    "full": {"tp": (262_144, 300), "thin": (1_000_000, (10, 40), 1)},
}
BOX = 3.0


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def _map(d: int = 2, nodes: int = 256):
    import numpy as np

    import energy

    g = np.linspace(-BOX, BOX, nodes)
    mesh = np.meshgrid(*([g] * d), indexing="ij")
    r2 = sum(m**2 for m in mesh)
    e = 0.5 * r2 - np.log1p(np.exp(-2.0 * (mesh[0] - 1.0) ** 2))  # a lumpy bowl
    return energy.EnergyMap.from_grid(e, [(-BOX, BOX)] * d)


def child_throughput(n_chains: int, n_steps: int) -> dict:
    import jax

    import langevin

    m = _map()

    def run():
        return langevin.sample(
            m,
            jax.random.key(0),
            n_chains=n_chains,
            n_steps=n_steps,
            schedule=None,
            progress=False,
        ).positions

    t0 = time.perf_counter()
    jax.block_until_ready(run())
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(run())
        warm.append(time.perf_counter() - t0)
    warm.sort()
    return {
        "chains": n_chains,
        "steps": n_steps,
        "cold_s": cold,
        "warm_s": warm,
        "mchain_steps_per_s_median": n_chains * n_steps / warm[1] / 1e6,
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_thinned(n_chains: int, n_draws: int, thin: int, trace: str) -> dict:
    import jax
    import numpy as np

    import langevin

    m = _map()
    t0 = time.perf_counter()
    res = langevin.sample(
        m,
        jax.random.key(1),
        n_chains=n_chains,
        n_steps=n_draws * thin,
        thin=thin,
        trace=trace,
        schedule=None,
        progress=False,
    )
    jax.block_until_ready(res.positions)
    wall = time.perf_counter() - t0
    traj = res.trajectory  # a read-only memory map of the file
    assert traj.shape == (n_draws, n_chains, 2), traj.shape
    last = np.asarray(traj[-1])
    same = bool(np.array_equal(last, np.asarray(res.positions)))
    size = sum(f.stat().st_size for f in Path(trace).iterdir())
    return {
        "chains": n_chains,
        "draws": n_draws,
        "thin": thin,
        "wall_s": wall,
        "trace_bytes": size,
        "last_draw_is_final_state": same,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _child(kind: str, *args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, __file__, "_child", kind, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench child {kind} {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict:
    """Both measurements at the quick or the full size; returns a JSON-able dict."""
    size = SIZES["quick" if quick else "full"]
    result = {"suite": "scale", "size": "quick" if quick else "full"}
    result["load_average"] = os.getloadavg()
    result["throughput"] = _child("throughput", *size["tp"])
    n_chains, draws, thin = size["thin"]
    points = []
    for n_draws in draws:
        with tempfile.TemporaryDirectory() as tmp:
            points.append(_child("thinned", n_chains, n_draws, thin, os.path.join(tmp, "trace")))
    (a, b) = points
    slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["draws"] - a["draws"])
    result["thinned"] = {
        "points": points,
        "rss_mb_per_recorded_draw": slope,
        "rss_mb_at_zero_draws": a["peak_rss_mb"] - slope * a["draws"],
        # The peak at 1000 recorded draws of the same chains: the larger measured peak plus the
        # measured growth per draw (counted as 0 when the two peaks do not grow).
        "extrapolated_peak_rss_mb_1000_draws": (
            max(a["peak_rss_mb"], b["peak_rss_mb"]) + max(slope, 0.0) * (1000 - b["draws"])
        ),
        "trace_bytes_1000_draws": n_chains * 1000 * 3 * 4,  # d = 2 states + 1 energy, float32
    }
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["_child"]:
        kind, args = argv[1], argv[2:]
        if kind == "throughput":
            out = child_throughput(int(args[0]), int(args[1]))
        else:
            out = child_thinned(int(args[0]), int(args[1]), int(args[2]), args[3])
        print(json.dumps(out))
        return 0
    quick = "--quick" in argv
    result = run(quick)
    text = json.dumps(result, indent=1)
    print(text)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ("scale-quick.json" if quick else "scale.json")).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    # Run as a script, this file's folder comes first on sys.path, where its sibling suites would
    # shadow the packages of the same names: the checkout's root instead.
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.exit(main(sys.argv[1:]))
