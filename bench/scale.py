"""Scale: chain-steps per second on one device, and a thinned run of many chains in bounded memory.

    python bench/scale.py [--quick]          # prints the JSON, writes bench/results/scale.json

Two measurements, each in a child process of its own (a fresh interpreter, so that its peak
resident memory is the run's alone):

1. ``throughput``: ULA on a 2-D map (256^2 nodes), fixed temperature, no recording: million
   chain-steps per second on this process's one device, compilation excluded (a warm call).
2. ``thinned``: ``langevin.sample(..., thin=1, trace=DIR)`` over 1e6 chains and 1000 steps, so
   1000 recorded draws of every chain (``--quick``: 1e5 chains, 100 draws), streamed to files
   chunk by chunk. Peak resident memory of the run's process is measured two ways: the kernel's
   high-water mark (``getrusage(RUSAGE_SELF).ru_maxrss``) and ``VmRSS`` of
   ``/proc/self/status`` sampled every 50 ms by a thread (the largest value seen, and a coarse
   timeline). The trace (12 GB at full size: 1e6 x 1000 x (2 + 1) float32) goes to a temporary
   folder of the bench's own, which is removed afterwards; before that, another fresh process
   opens it with ``np.load(mmap_mode="r")``, checks its shapes, that its last draw equals the
   run's final states (and energies) bit for bit, and that sampled draws are finite.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    # throughput: chains, steps; thinned: chains, recorded draws, thin
    "quick": {"tp": (32_768, 300), "thin": (100_000, 100, 1)},
    "full": {"tp": (262_144, 300), "thin": (1_000_000, 1000, 1)},
}
BOX = 3.0
RSS_EVERY_S = 0.05  # VmRSS sampling period (the run's chunks take ~1 s each at full size)
VERIFY_EVERY = 50  # the verifier reads every 50th draw whole (and the last one)


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


class RssSampler(threading.Thread):
    """Samples ``VmRSS`` of ``/proc/self/status`` every `RSS_EVERY_S` until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_kb = 0
        self.timeline = []  # (seconds since start, MB), about one a second
        self._done = threading.Event()
        self._t0 = time.perf_counter()

    @staticmethod
    def vmrss_kb() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def run(self):
        last = -1.0
        while not self._done.is_set():
            kb = self.vmrss_kb()
            self.peak_kb = max(self.peak_kb, kb)
            t = time.perf_counter() - self._t0
            if t - last >= 1.0:
                self.timeline.append((round(t, 1), round(kb / 1024, 1)))
                last = t
            self._done.wait(RSS_EVERY_S)

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.peak_kb = max(self.peak_kb, self.vmrss_kb())


def child_thinned(n_chains: int, n_draws: int, thin: int, folder: str) -> dict:
    import jax
    import numpy as np

    import langevin

    sampler = RssSampler()
    sampler.start()
    m = _map()
    trace = os.path.join(folder, "trace")
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
    sampler.stop()  # the peak is the run's: before anything below reads the trace
    peak_vm = sampler.peak_kb / 1024
    peak_ru = _peak_rss_mb()
    assert res.trajectory.shape == (n_draws, n_chains, 2), res.trajectory.shape
    # The final states, for the verifier (another process) to compare with the trace's last draw.
    np.save(os.path.join(folder, "positions.npy"), np.asarray(res.positions))
    np.save(os.path.join(folder, "energies.npy"), np.asarray(res.energies))
    size = sum(f.stat().st_size for f in Path(trace).iterdir())
    return {
        "chains": n_chains,
        "draws": n_draws,
        "thin": thin,
        "steps": n_draws * thin,
        "wall_s": wall,
        "trace_bytes": size,
        "peak_rss_mb_getrusage": peak_ru,
        "peak_rss_mb_vmrss_sampled": peak_vm,
        "rss_timeline_s_mb": sampler.timeline,
        "load_average_after": os.getloadavg(),
    }


def child_verify(folder: str, n_chains: int, n_draws: int) -> dict:
    """Read the trace another process wrote: shapes, last draw = final states, draws finite."""
    import numpy as np

    t0 = time.perf_counter()
    trace = os.path.join(folder, "trace")
    traj = np.load(os.path.join(trace, "trajectory.npy"), mmap_mode="r")
    etr = np.load(os.path.join(trace, "energy_trace.npy"), mmap_mode="r")
    pos = np.load(os.path.join(folder, "positions.npy"))
    en = np.load(os.path.join(folder, "energies.npy"))
    shapes_ok = traj.shape == (n_draws, n_chains, 2) and etr.shape == (n_draws, n_chains)
    read = sorted(set(range(0, n_draws, VERIFY_EVERY)) | {n_draws - 1})
    finite = all(bool(np.isfinite(traj[i]).all() and np.isfinite(etr[i]).all()) for i in read)
    return {
        "shapes_ok": bool(shapes_ok),
        "dtype": traj.dtype.str,
        "last_draw_equals_final_positions": bool(np.array_equal(traj[-1], pos)),
        # The trace's energies come from the step's fused value-and-gradient, the result's from
        # the energy alone: equal to the last bit or two, not bit for bit.
        "last_energy_max_abs_diff_to_final_energies": float(np.max(np.abs(etr[-1] - en))),
        "draws_read": len(read),
        "draws_read_finite": finite,
        "read_s": time.perf_counter() - t0,
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
    n_chains, n_draws, thin = size["thin"]
    need = n_chains * n_draws * 3 * 4  # d = 2 states + 1 energy, float32
    folder = tempfile.mkdtemp(prefix="groundstate-bench-scale-")  # the bench's own
    try:
        free = shutil.disk_usage(folder).free
        if free < need * 1.2:
            raise RuntimeError(
                f"bench scale: the trace needs {need / 1e9:.1f} GB and {folder} has "
                f"{free / 1e9:.1f} GB free; set TMPDIR to a folder with more room"
            )
        run_ = _child("thinned", n_chains, n_draws, thin, folder)
        run_["verify"] = _child("verify", folder, n_chains, n_draws)
    finally:
        shutil.rmtree(folder)  # created above by this bench: the trace, the final states
    run_["trace_removed"] = not os.path.exists(folder)
    run_["peak_rss_mb"] = max(run_["peak_rss_mb_getrusage"], run_["peak_rss_mb_vmrss_sampled"])
    run_["trace_in_memory_would_be_mb"] = need / 2**20
    result["thinned"] = run_
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["_child"]:
        kind, args = argv[1], argv[2:]
        if kind == "throughput":
            out = child_throughput(int(args[0]), int(args[1]))
        elif kind == "thinned":
            out = child_thinned(int(args[0]), int(args[1]), int(args[2]), args[3])
        else:
            out = child_verify(args[0], int(args[1]), int(args[2]))
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
