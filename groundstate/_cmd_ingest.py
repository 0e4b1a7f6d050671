"""``groundstate ingest``: crawl a data lake of HDF5, NetCDF and CSV files into an energy map.

    groundstate ingest ROOT... --var NAME[:UNIT] [--var ...] [--profile P] [--bins N]
        [--bounds LO:HI,LO:HI,...] [--workers N] -o OUT.npz

Progress goes to stderr (a bar on a terminal, else ``[k/n] PATH`` per finished file); then the
report goes to stdout (files read, files skipped with the reason, rows used and dropped per
reason, the map written). Running the same command again after a crash, Ctrl-C (exit code
130) or ``kill -9`` resumes where it stopped. Arguments, the output's folder and the output's
place (not inside the lake) are checked before any work; a second run writing the same output
while one runs fails at once (exit code 1).
"""

from __future__ import annotations

import argparse
import math
import os
import sys


def register(subparsers) -> None:
    """Add the ``ingest`` command."""
    p = subparsers.add_parser(
        "ingest",
        help="crawl HDF5 / NetCDF / CSV files into an energy map (.npz)",
        description=(
            "Walk the roots for HDF5, NetCDF 3/4 and CSV files, pick the variables by leaf name "
            "or profile alias, convert them to the asked units and count them into an energy "
            "map E = -log p. Resumable: run the same command again after a crash."
        ),
    )
    p.add_argument("roots", nargs="+", metavar="ROOT", help="directories, files or glob patterns")
    p.add_argument(
        "--var",
        dest="variables",
        action="append",
        required=True,
        metavar="NAME[:UNIT]",
        help="a variable (leaf name or profile alias) and the unit of the map axis; repeat",
    )
    p.add_argument(
        "--profile",
        metavar="P",
        help="domain profile: grid, casting, wind, or the path of a TOML file",
    )
    p.add_argument("--bins", type=int, default=64, metavar="N", help="bins per axis (default 64)")
    p.add_argument(
        "--bounds",
        type=parse_bounds,
        metavar="LO:HI,...",
        help="map bounds per variable in the asked units, in --var order (default: the "
        "profile's, else the data's extremes)",
    )
    p.add_argument(
        "--smoothing",
        type=float,
        default=1.0,
        metavar="CELLS",
        help="Gaussian smoothing of the counts, in grid cells (default 1)",
    )
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: all cores)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="the map to write")
    # jax is imported only for the map build: the compilation cache is set up just before it
    # (groundstate.cli), not before the crawl starts.
    p.set_defaults(func=run, lazy_compilation_cache=True)


def parse_bounds(text: str) -> list[tuple[float, float]]:
    """``"0:25,-100:2100"`` -> ``[(0.0, 25.0), (-100.0, 2100.0)]``."""
    out = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition(":")
        try:
            pair = (float(lo), float(hi))
        except ValueError:
            pair = None
        if not sep or pair is None or not all(map(math.isfinite, pair)) or pair[0] >= pair[1]:
            raise argparse.ArgumentTypeError(
                f"bad bounds {part!r} in {text!r}: expected LO:HI with LO < HI, comma-separated"
            )
        out.append(pair)
    return out


def _is_the_program() -> bool:
    """Whether this process is the ``groundstate`` command (console script or ``-m``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "groundstate.cli":
        return True
    entry = getattr(main, "main", None)
    return getattr(entry, "__module__", None) == "groundstate.cli"


def run(args: argparse.Namespace) -> int:
    """Run the crawl, write the map, print the report; returns the exit code."""
    import ingest

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers}: expected at least 1")
    if not math.isfinite(args.smoothing) or args.smoothing < 0:
        raise ValueError(f"--smoothing {args.smoothing}: expected a finite width >= 0 (cells)")
    cache = getattr(args, "compilation_cache", None)
    try:
        m, report = ingest.ingest(
            args.roots,
            args.variables,
            output=args.output,
            profile=args.profile,
            bins=args.bins,
            bounds=args.bounds,
            smoothing=args.smoothing,
            workers=args.workers,
            _before_build=None if cache is None else cache.wait,
        )
    except KeyboardInterrupt:
        # Workers are stopped; every file recorded before the interrupt stays recorded.
        print(
            f"groundstate ingest: interrupted; the files counted so far are kept in "
            f"{ingest.state_path(args.output)}: run the same command again to resume",
            file=sys.stderr,
        )
        if _is_the_program():
            # Everything is on disk and the lock is released: leave now. The interpreter's own
            # exit (JAX, numba and LLVM teardown) takes 1-3 s on a loaded machine, past the 2 s
            # a Ctrl-C may take. Only as the `groundstate` program, never when main() is called
            # from Python (a notebook would lose its kernel).
            from multiprocessing import util

            from ingest._crawl import stop_forkserver

            stop_forkserver()
            util._exit_function()  # multiprocessing's own exit: its semaphores are released
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    print(report)
    axes = ", ".join(
        f"{n} [{u}] {lo:g}..{hi:g}"
        for n, u, (lo, hi) in zip(m.names, m.units, m.bounds, strict=True)
    )
    print(f"wrote {args.output}: {m.shape} grid, {axes}")
    return 0
