"""``groundstate fit``: a tnn surrogate (an ensemble of Flax networks) of an energy map.

    groundstate fit MAP.npz -o SURROGATE/ [--members K] [--steps N] [--seed S]

The surrogate is smooth, differentiable and carries its uncertainty (the members' spread); it
is an orbax checkpoint folder that ``energy.tnn.load`` reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``fit`` command."""
    p = subparsers.add_parser(
        "fit",
        help="fit a tnn surrogate of a map (orbax checkpoint folder)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("map", metavar="MAP.npz", help="energy map")
    p.add_argument("-o", "--output", required=True, metavar="SURROGATE", help="folder to write")
    p.add_argument("--members", type=int, default=4, help="ensemble members (default 4)")
    p.add_argument("--steps", type=int, default=3000, help="maximum training steps (default 3000)")
    p.add_argument("--width", type=int, default=64, help="hidden units per layer (default 64)")
    p.add_argument("--depth", type=int, default=3, help="hidden layers (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fit")
    p.add_argument("--force", action="store_true", help="replace an existing surrogate folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fit and save; returns 0."""
    import jax
    import numpy as np

    import energy

    out = Path(args.output)
    if out.exists() and not (args.force and (out / "tnn.json").is_file()):
        raise ValueError(
            f"{out}: exists; choose another folder"
            + (" (--force replaces only a surrogate folder)" if args.force else " or --force")
        )
    if min(args.members, args.steps, args.width, args.depth) < 1:
        raise ValueError("--members, --steps, --width and --depth must be at least 1")
    m = energy.load(args.map)
    s = energy.tnn.fit(
        m,
        jax.random.key(args.seed),
        members=args.members,
        steps=args.steps,
        width=args.width,
        depth=args.depth,
    )
    s.save(str(out))
    val = s.provenance.get("best_val_loss")
    best = f"{float(np.min(val)):.4g}" if val else "n/a"
    print(
        f"wrote {out}: {s.members} members over {', '.join(m.names)}; best validation loss "
        f"{best} (mean squared energy error / var(E))"
    )
    return 0
