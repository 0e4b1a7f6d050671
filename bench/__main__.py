"""``python -m bench``: run the suites on one backend, or merge results into a report.

The platform is chosen before jax is imported (``JAX_PLATFORMS`` from ``--backend``); when the
backend asked for is not present the run stops with an error, so a result's label never lies.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import SUITES

# --backend -> JAX_PLATFORMS (jax's name for NVIDIA GPUs is "cuda")
PLATFORMS = {"cpu": "cpu", "gpu": "cuda", "tpu": "tpu"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run groundstate's benchmark suites on one backend (JSON per run + tables); "
        "'python -m bench report' merges results.",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (~2 min on 2 quiet cores; bench/README.md)",
    )
    size.add_argument("--smoke", action="store_true", help="tiny sizes, for CI (seconds)")
    p.add_argument("--backend", choices=sorted(PLATFORMS), help="the platform to run on")
    p.add_argument("--only", help=f"comma-separated suites among {','.join(SUITES)}")
    p.add_argument("--repeats", type=int, help="timed rounds per case (default: per size)")
    p.add_argument(
        "--out",
        default=None,
        help="folder for the JSON (default bench/results/ of the checkout)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        from . import report

        return report.main(argv[1:])
    args = _parser().parse_args(argv)
    only = SUITES if not args.only else tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = [s for s in only if s not in SUITES]
    if unknown:
        print(
            f"bench: unknown suite(s) {unknown}; choose among {', '.join(SUITES)}", file=sys.stderr
        )
        return 2
    if args.repeats is not None and args.repeats < 1:
        print(f"bench: --repeats must be >= 1, got {args.repeats}", file=sys.stderr)
        return 2
    # Peers with OpenMP thread pools (numba) would otherwise spin after each parallel loop and
    # slow down whatever runs next in the same process.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.backend:
        if "jax" in sys.modules:  # pragma: no cover - only when called from inside a jax process
            print(
                "bench: jax is already imported: run 'python -m bench' in its own process",
                file=sys.stderr,
            )
            return 2
        os.environ["JAX_PLATFORMS"] = PLATFORMS[args.backend]
    try:
        import jax

        devices = jax.devices()
    except RuntimeError as err:
        print(
            f"bench: backend {args.backend or 'default'} is not present here: {err}",
            file=sys.stderr,
        )
        return 3
    backend = jax.default_backend()
    want = {"gpu": ("gpu", "cuda", "rocm")}.get(args.backend, (args.backend,))
    if args.backend and backend not in want:
        print(
            f"bench: asked for {args.backend} but jax runs on {backend}: stopping", file=sys.stderr
        )
        return 3
    from . import _common as C

    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    out_dir = Path(args.out) if args.out else C.RESULTS
    mach = C.machine()
    C.say(
        f"bench ({size}) on {backend}: {len(devices)} x {devices[0].device_kind}; "
        f"{mach['cpu_model']}, {mach['cpu_cores']} cores, load {mach['load_average']}"
    )
    result = {"schema": C.SCHEMA, "size": size, "machine": mach, "suites": {}}
    # A persistent compilation cache turns compile times into cache loads: say so in the JSON.
    result["compilation_cache"] = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    t_all = time.perf_counter()
    failed = []
    for name in only:
        mod = __import__(f"bench.{name}", fromlist=["run"])
        clock = C.SuiteClock()
        try:
            profile = C.apply_profile(mod, name, size, backend=backend)
            res = mod.run(size, backend, args.repeats)
            if profile:
                res["profile"] = profile
        except Exception as err:  # noqa: BLE001 - one broken suite must not lose the others
            import traceback

            traceback.print_exc()
            failed.append(name)
            result["suites"][name] = {"error": f"{type(err).__name__}: {err}", **clock.stop()}
            continue
        res.update(clock.stop())
        result["suites"][name] = res
        mod.print_result(res)
        C.say(f"  ({name}: {C.fmt_clock(res)})")
    result["seconds"] = time.perf_counter() - t_all
    # the estimate of the whole run on these cores with nothing else running (see SuiteClock)
    result["quiet_s"] = sum(r.get("quiet_s", 0.0) for r in result["suites"].values())
    C.print_clocks(result)
    result["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["peak_rss_mb"] = C.peak_rss_mb()
    path = C.write_result(result, out_dir)
    C.say(
        f"\nwrote {path} ({result['seconds']:.0f} s, about {result['quiet_s']:.0f} s quiet; "
        f"load at the end {result['load_average_end']})"
    )
    if failed:
        print(f"bench: suite(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
