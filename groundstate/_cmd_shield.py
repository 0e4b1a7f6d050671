"""``groundstate shield``: calibrate a shield on held-out states and check states against it.

    groundstate shield calibrate MAP.npz STATES.csv --alpha A -o SHIELD.npz
    groundstate shield check SHIELD.npz STATES.csv [-o OUT.csv]

STATES.csv has a header row; the columns used are the map's axis names (case-insensitive) when
the map has names and the file has those columns, otherwise the file must have exactly ``d``
columns. Empty cells and ``nan`` are not-finite values (blocked when checked).
"""

from __future__ import annotations

import argparse
import csv
import io
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
    chk.set_defaults(func=_check)


def _missing_action(parser: argparse.ArgumentParser):
    """Handler for ``groundstate shield`` without an action: help and exit code 2."""

    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def read_states(path: str | Path, names, d: int) -> tuple[list[str], list[list[str]], np.ndarray]:
    """Read a CSV of states: ``(header, rows, x)`` with ``x`` float64 ``(n, d)``.

    Columns are picked by the map's ``names`` (case-insensitive) when all are present, else the
    file must have exactly ``d`` columns. Empty cells and ``nan`` give NaN; other text is an
    error naming the file, line and column.
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
    lower = [h.lower() for h in header]
    wanted = [str(n).lower() for n in names] if names else None
    if wanted and all(w in lower for w in wanted):
        cols = [lower.index(w) for w in wanted]
    elif len(header) == d:
        cols = list(range(d))
    else:
        expected = f"columns {list(names)}" if names else f"{d} columns"
        raise ValueError(f"{path}: expected {expected} for the map's axes, found {header}")
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
    import energy

    m = energy.load(args.map)
    _, _, x = read_states(args.states, m.names, m.ndim)
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
    import energy

    sh = energy.Shield.load(args.shield)
    m = sh.energy_fn
    header, rows, x = read_states(args.states, getattr(m, "names", None), sh.ndim)
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
