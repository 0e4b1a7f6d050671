"""``groundstate sample``: draw states from an energy map with annealed Langevin chains.

    groundstate sample MAP.npz -n N -o OUT.csv|OUT.npy [--steps K] [--method ula|mala]
        [--temperature T] [--schedule auto|none] [--fix NAME=VALUE ...] [--seed S]

``OUT.csv`` has one column per map variable plus ``energy``; ``OUT.npy`` holds the positions
``(N, d)``. A line when the chains start and a summary (chains, schedule, step, diverged chains,
time) go to stderr.

Ctrl-C stops the command at once (exit code 130): the chains run in a worker thread while the
main thread waits, so the interrupt is seen even inside the compiled loop, and the output is
written (atomically, by the main thread) only after the chains have finished: it is absent or
whole, never partial. ``-o`` may not name the input map.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time


def register(subparsers) -> None:
    """Add the ``sample`` command."""
    p = subparsers.add_parser(
        "sample",
        help="sample states from an energy map (annealed Langevin chains)",
        description=(
            "Run N Langevin chains on the map's energy, annealed over its noise pyramid by "
            "default, and write their final states: samples of exp(-E/T)."
        ),
    )
    p.add_argument("map", metavar="MAP.npz", help="an energy map written by groundstate ingest")
    p.add_argument("-n", "--chains", type=int, required=True, metavar="N", help="number of chains")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.csv or OUT.npy")
    p.add_argument(
        "--steps", type=int, metavar="K", help="sampling steps after annealing (default 1000)"
    )
    p.add_argument("--method", choices=("ula", "mala"), default="ula", help="kernel (ula)")
    p.add_argument(
        "--temperature", type=float, default=1.0, metavar="T", help="sample exp(-E/T) (1)"
    )
    p.add_argument(
        "--schedule",
        choices=("auto", "none"),
        default="auto",
        help="auto: anneal over the map's noise levels; none: fixed-temperature chains",
    )
    p.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hold a variable fixed (sample the others conditioned on it); repeat",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.set_defaults(func=run)


def _parse_fixed(items: list[str]) -> dict[str, float]:
    """``["speed=3.5", ...]`` -> ``{"speed": 3.5}`` (ValueError naming the bad item)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            v = float(value)
        except ValueError:
            v = math.nan
        if not sep or not name or not math.isfinite(v):
            raise ValueError(f"--fix {item!r}: expected NAME=VALUE with a finite number")
        out[name.strip()] = v
    return out


def _write(path: str, names, positions, energies) -> None:
    """Write OUT.csv (names + energy columns) or OUT.npy (positions), atomically."""
    import numpy as np

    ext = os.path.splitext(path)[1].lower()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".sample-", suffix=ext, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if ext == ".npy":
                np.save(f, positions)
            else:
                header = ",".join([*names, "energy"])
                table = np.column_stack([positions, energies])
                np.savetxt(f, table, delimiter=",", header=header, comments="", fmt="%.9g")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _in_worker(fn):
    """``fn()`` in a daemon thread; the main thread waits in short sleeps, so Ctrl-C reaches it
    (a compiled loop blocks the thread that waits on it until the loop ends)."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as err:  # handed to the main thread
            out["error"] = err

    worker = threading.Thread(target=target, name="groundstate-sample", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    if "error" in out:
        raise out["error"]
    return out["value"]


def run(args: argparse.Namespace) -> int:
    """Load the map, run the chains, write the samples; returns the exit code."""
    # The output is never the input (checked before any work: the map is never overwritten).
    if os.path.exists(args.map) and os.path.exists(args.output):
        if os.path.samefile(args.map, args.output):
            raise ValueError(f"output {args.output!r} is the input map {args.map!r}: pick another")
    elif os.path.realpath(args.map) == os.path.realpath(args.output):
        raise ValueError(f"output {args.output!r} is the input map {args.map!r}: pick another")
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".csv", ".npy"):
        raise ValueError(f"output {args.output!r} must end in .csv or .npy")
    if args.chains < 1:
        raise ValueError(f"-n/--chains must be >= 1, got {args.chains}")
    fixed = _parse_fixed(args.fix)

    import jax
    import numpy as np

    import energy
    import langevin

    m = energy.load(args.map)
    t0 = time.perf_counter()
    print(
        f"sampling {args.chains} chains on {args.map} ({m.ndim}-D) ...", file=sys.stderr, flush=True
    )

    def chains():
        res = langevin.sample(
            m,
            jax.random.key(args.seed),
            n_chains=args.chains,
            n_steps=args.steps,
            method=args.method,
            temperature=args.temperature,
            schedule="auto" if args.schedule == "auto" else None,
            fixed=fixed or None,
        )
        positions = np.asarray(res.positions, dtype=np.float64)
        energies = np.asarray(res.energies, dtype=np.float64)
        return res, positions, energies

    res, positions, energies = _in_worker(chains)
    elapsed = time.perf_counter() - t0
    _write(args.output, m.names, positions, energies)
    print(
        f"sampled {args.chains} chains on {args.map} ({m.ndim}-D): {res.schedule}; "
        f"{res.n_steps} sampling steps, step {float(res.step_size):.3g}; "
        f"{res.n_diverged} diverged; {elapsed:.1f} s -> {args.output}",
        file=sys.stderr,
    )
    return 0 if res.n_diverged < args.chains else 1
