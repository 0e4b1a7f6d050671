"""``groundstate info``: what a map, a shield, a surrogate or a capsule holds.

    groundstate info MAP.npz|SHIELD.npz|SURROGATE/|CAPSULE [--plot OUT.png]

Names, units, bounds, nodes, samples counted, provenance and the checksum state (every file
is validated when it is read: a bad checksum is an error, exit code 1). ``--plot`` draws the
landscape: a 2-D map with contour lines (a shield's envelope in red); more axes: the 2-D
marginals in a corner grid.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``info`` command."""
    p = subparsers.add_parser(
        "info",
        help="describe a map, shield, surrogate or capsule (and draw it)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("file", metavar="FILE", help="map or shield .npz, surrogate folder, capsule")
    p.add_argument("--plot", metavar="OUT.png", help="draw the landscape to a PNG")
    p.set_defaults(func=run)


def _map_lines(m) -> list[str]:
    lines = [f"axes: {m.ndim}, nodes {'x'.join(map(str, m.shape))} = {m.values.size}"]
    for n, u, (lo, hi), k in zip(m.names, m.units, m.bounds, m.shape, strict=True):
        lines.append(f"  {n} [{u}] {lo:g}..{hi:g}, {k} nodes")
    lines.append(f"samples counted: {m.n_samples}")
    prov = dict(m.provenance or {})
    for key in ("files_read", "files_skipped"):
        if isinstance(prov.get(key), list):
            prov[key] = f"{len(prov[key])} files"
    lines.append("provenance: " + json.dumps(prov, sort_keys=True, default=str)[:600])
    return lines


def load_any(path: str):
    """``(kind, object)``: kind is ``map``, ``shield``, ``surrogate`` or ``capsule``."""
    import energy

    from . import _capsule

    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file or folder")
    if p.is_dir() and (p / "tnn.json").exists():
        return "surrogate", energy.tnn.load(str(p))
    if p.is_dir() or _capsule.is_archive(p) and not p.name.lower().endswith(".npz"):
        return "capsule", _capsule.load(p)
    try:
        return "shield", energy.Shield.load(str(p))
    except ValueError as shield_err:
        try:
            return "map", energy.load(str(p))
        except ValueError as map_err:
            if "shield" in str(map_err):
                raise shield_err from None
            raise


def run(args: argparse.Namespace) -> int:
    """Print the description; draw it with ``--plot``."""
    if args.plot:
        from . import _plot

        try:
            _plot.require()
        except ImportError as err:  # before any work, and as an error with exit code 1
            raise ValueError(str(err)) from None
    kind, obj = load_any(args.file)
    lines = [f"{args.file}: {kind}"]
    m, sh = None, None
    if kind == "map":
        m = obj
        lines += _map_lines(m)
    elif kind == "shield":
        sh, m = obj, obj.energy_fn
        lines.append(
            f"shield: threshold {float(sh.threshold):.6g}, alpha {sh.alpha}, n {sh.n_calibration}"
        )
        lines += _map_lines(m)
    elif kind == "surrogate":
        lines.append(f"surrogate: {obj!r}")
        lines.append(f"axes: {obj.names} [{obj.units}], bounds {obj.bounds}")
        prov = obj.provenance
        lines.append(
            f"members {obj.members}; steps {prov.get('steps_run')}; best validation loss "
            f"{prov.get('best_val_loss')}"
        )
    else:
        from ._cmd_capsule import describe

        m, sh = obj.map, obj.shield
        lines.append(describe(obj.meta))
    lines.append("checksums: ok")
    print("\n".join(lines))
    if args.plot:
        from . import _plot

        if m is None:
            raise ValueError(f"{args.file}: --plot draws maps, shields and capsules")
        _plot.landscape(m, args.plot, shield=sh, title=f"{Path(args.file).name}")
        print(f"wrote {args.plot}")
    return 0
