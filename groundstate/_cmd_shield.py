"""``groundstate shield``: calibrate a shield on held-out states and check states against it.

    groundstate shield calibrate MAP.npz STATES.csv --alpha A -o SHIELD.npz
    groundstate shield check SHIELD.npz STATES.csv [-o OUT.csv]

STATES.csv has a header row that names every axis of the map (any order; an exact match first,
else case-insensitive); a missing axis is an error naming it. Columns are read by position (exactly
``d`` columns, in the map's axis order) only with ``--by-position`` or for a map without names of
its own. Empty cells and ``nan`` are not-finite values (blocked when checked). An output path that
is one of the inputs (same file after resolving links, or a hard link to it) is refused before any
work, and nothing is written.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

import numpy as np


def register(subparsers) -> None:
    """Add the ``shield`` command and its ``calibrate`` / ``check`` sub-commands."""
    p = subparsers.add_parser(
        "shield",
        help="calibrate a shield on held-out states, check states against it",
        description="A calibrated energy threshold that blocks states the data has not proven.",
    )
    sub = p.add_subparsers(dest="shield_command", metavar="ACTION")
    p.set_defaults(func=_missing_action(p))

    cal = sub.add_parser(
        "calibrate",
        help="split-conformal threshold from held-out in-distribution states",
        description=(
            "Threshold = the ceil((n+1)(1-alpha))-th smallest energy of the n held-out states, so "
            "that an in-distribution state is blocked with probability <= alpha."
        ),
    )
    cal.add_argument("map", metavar="MAP.npz", help="energy map (from `groundstate ingest`)")
    cal.add_argument("states", metavar="STATES.csv", help="held-out in-distribution states")
    cal.add_argument("--alpha", type=float, default=0.01, help="false-block rate (default 0.01)")
    cal.add_argument("-o", "--output", required=True, metavar="SHIELD", help="shield file (.npz)")
    _add_by_position(cal)
    cal.set_defaults(func=_calibrate)

    chk = sub.add_parser(
        "check",
        help="decide states: allow or block, with the reason",
        description=(
            "Writes the input columns plus allow, reason, reason_code, energy and p_value per row; "
            "a summary per reason goes to stderr."
        ),
    )
    chk.add_argument("shield", metavar="SHIELD", help="shield file from `shield calibrate`")
    chk.add_argument("states", metavar="STATES.csv", help="states to check")
    chk.add_argument("-o", "--output", metavar="OUT.csv", help="decisions CSV (default: stdout)")
    _add_by_position(chk)
    chk.set_defaults(func=_check)


def _add_by_position(parser: argparse.ArgumentParser) -> None:
    """The ``--by-position`` flag: read STATES.csv columns in axis order, ignoring the header."""
    parser.add_argument(
        "--by-position",
        action="store_true",
        help=(
            "read the states' columns in the map's axis order (exactly d columns) instead of by "
            "the map's axis names; by default the header must name every axis"
        ),
    )


def _same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` are one file: same real path, or same inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def _check_output(output: str | None, inputs: dict[str, str]) -> None:
    """Refuse an output path that is one of the inputs, before any work and any write."""
    if output is None:
        return
    for what, path in inputs.items():
        if _same_file(output, path):
            raise ValueError(
                f"output {output} is the {what} input {path}: writing it would destroy the "
                f"input; choose another output path"
            )


def _missing_action(parser: argparse.ArgumentParser):
    """Handler for ``groundstate shield`` without an action: help and exit code 2."""

    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def _default_names(names, d: int) -> bool:
    """True when the map has no axis names of its own (the defaults ``x0, x1, ...``)."""
    return not names or list(names) == [f"x{i}" for i in range(d)]


def _columns(path: Path, header: list[str], names, d: int, by_position: bool) -> list[int]:
    """Indices of the header's columns for the map's axes (see `read_states`)."""
    if by_position:
        if len(header) != d:
            raise ValueError(
                f"{path}: --by-position needs exactly {d} columns (one per axis, in the map's "
                f"order {list(names) if names else ''}), found {len(header)}: {header}"
            )
        return list(range(d))
    named = not _default_names(names, d)
    cols, missing = [], []
    for name in names or []:
        exact = [i for i, h in enumerate(header) if h == name]
        loose = [i for i, h in enumerate(header) if h.lower() == str(name).lower()]
        found = exact or loose
        if len(found) > 1:
            raise ValueError(
                f"{path}: the map's axis {name!r} matches {len(found)} columns "
                f"{[header[i] for i in found]}; rename all but one"
            )
        if found:
            cols.append(found[0])
        else:
            missing.append(name)
    if not missing:
        return cols
    if not named and len(header) == d:
        return list(range(d))  # a map without names of its own: the columns in axis order
    if not named:
        raise ValueError(
            f"{path}: the map's axes have no names; expected exactly {d} columns in axis "
            f"order (or columns {list(names)}), found {len(header)}: {header}"
        )
    raise ValueError(
        f"{path}: no column for the map's axes {missing} (the map's axes are {list(names)}, "
        f"the header is {header}); name every axis in the header (any order, any case), or "
        f"pass --by-position to read the first {d} columns in the map's axis order"
    )


def read_states(
    path: str | Path, names, d: int, by_position: bool = False
) -> tuple[list[str], list[list[str]], np.ndarray]:
    """Read a CSV of states: ``(header, rows, x)`` with ``x`` float64 ``(n, d)``.

    When the map has axis names of its own, the header must name every axis (any order; an exact
    match first, else case-insensitive, never two candidates); a missing name is an error naming
    it. Columns are read by position (the file must then have exactly ``d`` columns) only with
    ``by_position=True`` or for a map without names (its default names ``x0, x1, ...``). Empty
    cells and ``nan`` give NaN; other text is an error naming the file, line and column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ValueError(f"{path}: no such file") from err
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration as err:
        raise ValueError(f"{path}: empty file, expected a header row and states") from err
    rows = [r for r in reader if any(c.strip() for c in r)]
    cols = _columns(path, header, names, d, by_position)
    x = np.empty((len(rows), d), dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(
                f"{path}: line {i + 2} has {len(row)} fields, the header has {len(header)}"
            )
        for j, c in enumerate(cols):
            cell = row[c].strip()
            try:
                x[i, j] = float(cell) if cell else np.nan
            except ValueError as err:
                raise ValueError(
                    f"{path}: line {i + 2}, column {header[c]!r}: {cell!r} is not a number"
                ) from err
    if x.shape[0] == 0:
        raise ValueError(f"{path}: no states after the header")
    return header, rows, x


def _calibrate(args: argparse.Namespace) -> int:
    """``shield calibrate``: load the map, calibrate on the states, save the shield."""
    _check_output(args.output, {"map": args.map, "states": args.states})
    import energy

    m = energy.load(args.map)
    _, _, x = read_states(args.states, m.names, m.ndim, args.by_position)
    sh = energy.Shield.calibrate(
        m, x, alpha=args.alpha, provenance={"states": str(args.states), "map": str(args.map)}
    )
    sh.save(args.output)
    cal = sh.provenance["calibration"]
    print(
        f"shield: threshold {cal['threshold']:.6g} = energy rank {cal['rank']} of "
        f"{cal['n']} held-out states (alpha {cal['alpha']}); wrote {args.output}",
        file=sys.stderr,
    )
    blocked = {k: v for k, v in cal["blocked_per_reason"].items() if k != "allowed" and v}
    if blocked:
        print(
            f"shield: calibration states blocked whatever the threshold: {blocked}", file=sys.stderr
        )
    return 0


def _check(args: argparse.Namespace) -> int:
    """``shield check``: decide every row and write the decisions."""
    _check_output(args.output, {"shield": args.shield, "states": args.states})
    import energy

    sh = energy.Shield.load(args.shield)
    m = sh.energy_fn
    header, rows, x = read_states(args.states, getattr(m, "names", None), sh.ndim, args.by_position)
    d = sh(x)
    allow = np.asarray(d.allow)
    reason = np.asarray(d.reason)
    e = np.asarray(d.energy)
    p = np.asarray(d.p_value)
    names = {int(r): r.name.lower() for r in energy.Reason}
    out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        w = csv.writer(out, lineterminator="\n")
        w.writerow([*header, "allow", "reason", "reason_code", "energy", "p_value"])
        for i, row in enumerate(rows):
            w.writerow(
                [
                    *row,
                    "true" if allow[i] else "false",
                    names[int(reason[i])],
                    int(reason[i]),
                    f"{e[i]:.9g}",
                    f"{p[i]:.9g}",
                ]
            )
    finally:
        if out is not sys.stdout:
            out.close()
    summary = ", ".join(f"{k} {v}" for k, v in d.summary().items() if v)
    print(f"shield: {len(rows)} states: {summary}", file=sys.stderr)
    return 0
