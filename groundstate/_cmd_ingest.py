"""``groundstate ingest``: crawl a data lake of HDF5, NetCDF and CSV files into an energy map.

    groundstate ingest ROOT... --var NAME[:UNIT] [--var ...] [--profile P] [--bins N]
        [--bounds LO:HI,LO:HI,...] [--workers N] -o OUT.npz

Progress goes to stderr (a bar on a terminal, else ``[k/n] PATH`` per finished file); then the
report goes to stdout (files read, files skipped with the reason, rows used and dropped per
reason, the map written). Running the same command again after a crash resumes where it
stopped.
"""

from __future__ import annotations

import argparse
import math


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
    p.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    """Run the crawl, write the map, print the report; returns the exit code."""
    import ingest

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers}: expected at least 1")
    m, report = ingest.ingest(
        args.roots,
        args.variables,
        output=args.output,
        profile=args.profile,
        bins=args.bins,
        bounds=args.bounds,
        smoothing=args.smoothing,
        workers=args.workers,
    )
    print(report)
    axes = ", ".join(
        f"{n} [{u}] {lo:g}..{hi:g}"
        for n, u, (lo, hi) in zip(m.names, m.units, m.bounds, strict=True)
    )
    print(f"wrote {args.output}: {m.shape} grid, {axes}")
    return 0
