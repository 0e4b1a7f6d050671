"""``groundstate onboard``: one command from a data lake to a verified capsule.

    groundstate onboard LAKE... --var NAME[:UNIT] [--var ...] [--profile P] [--alpha A]
        [--bins N] [--bounds LO:HI,...] [--workers N] [--surrogate] [--objective MOD:FUNC]
        [--licence SPDX] [--force] -o CAPSULE

Four steps, one line each (with time and figures): ingest (the lake split by time, or by file,
into training, calibration and test parts), ground (the map, a surrogate when asked), protect
(the shield calibrated on the held-out part, its held-out block rate with a binomial interval,
the profile's known-bad states checked), discover (the profile's sweep, a table and a picture).
Running the same command again after an interruption resumes.
"""

from __future__ import annotations

import argparse

from ._cmd_ingest import parse_bounds


def register(subparsers) -> None:
    """Add the ``onboard`` command."""
    p = subparsers.add_parser(
        "onboard",
        help="ground a domain from a data lake: map, shield, discovery -> a capsule",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("lake", nargs="+", metavar="LAKE", help="directories, files or glob patterns")
    p.add_argument(
        "--var",
        dest="variables",
        action="append",
        required=True,
        metavar="NAME[:UNIT]",
        help="a variable (leaf name or profile alias) and the unit of its axis; repeat",
    )
    p.add_argument("--profile", metavar="P", help="domain profile: grid, casting, wind or a TOML")
    p.add_argument(
        "--alpha", type=float, default=0.01, help="shield false-block level (default 0.01)"
    )
    p.add_argument("--bins", type=int, default=64, metavar="N", help="bins per axis (default 64)")
    p.add_argument(
        "--bounds", type=parse_bounds, metavar="LO:HI,...", help="map bounds per variable"
    )
    p.add_argument(
        "--smoothing", type=float, default=1.0, metavar="CELLS", help="smoothing in grid cells"
    )
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: all cores)")
    p.add_argument("--surrogate", action="store_true", help="also fit a tnn surrogate")
    p.add_argument(
        "--objective",
        metavar="MODULE:FUNCTION",
        help="discovery objective: a JAX function of one state (d,) -> scalar to minimise",
    )
    p.add_argument("--domain", help="the domain's name (default: the profile's)")
    p.add_argument("--licence", metavar="SPDX", help="the data's licence, e.g. etalab-2.0")
    p.add_argument("--chains", type=int, default=256, help="chains per discovery setting")
    p.add_argument("--seed", type=int, default=0, help="seed of the surrogate and the chains")
    p.add_argument("--no-plots", action="store_true", help="do not draw pictures")
    p.add_argument("--force", action="store_true", help="replace an existing (valid) capsule")
    p.add_argument("-o", "--output", required=True, metavar="CAPSULE", help="capsule folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Onboard; returns 0 when the capsule is written."""
    from ._onboard import onboard

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers}: expected at least 1")
    onboard(
        args.lake,
        args.variables,
        output=args.output,
        profile=args.profile,
        alpha=args.alpha,
        bins=args.bins,
        bounds=args.bounds,
        smoothing=args.smoothing,
        workers=args.workers,
        surrogate=args.surrogate,
        objective=args.objective,
        domain=args.domain,
        licence=args.licence,
        seed=args.seed,
        n_chains=args.chains,
        force=args.force,
        plots=not args.no_plots,
    )
    return 0
