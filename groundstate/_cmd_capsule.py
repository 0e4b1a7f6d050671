"""``groundstate capsule``: verify a capsule, describe it, pack it into one archive.

groundstate capsule verify CAPSULE      exit 0 when every member matches the manifest
groundstate capsule info CAPSULE        variables, data, shield, discovery, files
groundstate capsule pack CAPSULE OUT.zip|OUT.tar|OUT.tar.gz
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``capsule`` command and its actions."""
    p = subparsers.add_parser(
        "capsule",
        help="verify, describe or pack a capsule",
        description="A capsule grounds one domain: map, shield, surrogate, profile, manifest.",
    )
    sub = p.add_subparsers(dest="capsule_command", metavar="ACTION")

    def missing(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(func=missing)
    v = sub.add_parser("verify", help="check every member's size and SHA-256 against capsule.json")
    v.add_argument("capsule", metavar="CAPSULE", help="capsule folder or .zip/.tar of one")
    v.set_defaults(func=_verify)
    i = sub.add_parser("info", help="what the capsule grounds and how well")
    i.add_argument("capsule", metavar="CAPSULE", help="capsule folder or .zip/.tar of one")
    i.set_defaults(func=_info)
    k = sub.add_parser("pack", help="write a verified capsule as one .zip or .tar archive")
    k.add_argument("capsule", metavar="CAPSULE", help="capsule folder")
    k.add_argument("archive", metavar="OUT", help="the .zip, .tar or .tar.gz to write")
    k.set_defaults(func=_pack)


def _verify_any(path: str) -> dict:
    from . import _capsule

    p = Path(path)
    if _capsule.is_archive(p):
        with tempfile.TemporaryDirectory(prefix="groundstate-capsule-") as tmp:
            root = _capsule._extract(p, Path(tmp))
            try:
                return _capsule.verify(root)
            except _capsule.CapsuleError as err:
                raise _capsule.CapsuleError(str(err).replace(str(root), f"{p}!")) from None
    return _capsule.verify(p)


def _verify(args: argparse.Namespace) -> int:
    meta = _verify_any(args.capsule)
    n = len(meta["files"])
    size = sum(e["size"] for e in meta["files"].values())
    print(f"{args.capsule}: ok: {n} members ({size / 1e6:.2f} MB) match capsule.json")
    return 0


def describe(meta: dict) -> str:
    """A capsule manifest as text for people."""
    prov, sh = meta["provenance"], meta["shield"]
    held = prov.get("held_out", {})
    lines = [
        f"domain: {meta.get('domain')} (profile {meta.get('profile')}); groundstate "
        f"{meta.get('groundstate_version')}, schema {meta.get('schema')}, created "
        f"{meta.get('created')}",
        "variables:",
    ]
    for v in meta["variables"]:
        lo, hi = v["bounds"]
        lines.append(f"  {v['name']} [{v['unit']}] {lo:g}..{hi:g}, {v['bins']} nodes")
    lines.append(
        f"data: {prov.get('files')} files, {prov.get('bytes', 0) / 1e6:.1f} MB, "
        f"{prov.get('rows_used')} rows counted, dropped {prov.get('rows_dropped')}; "
        f"time span {prov.get('time_span')}; licence {meta.get('licence') or 'not stated'}"
    )
    rate, ci = sh.get("held_out_block_rate"), sh.get("held_out_block_rate_interval_95")
    lines.append(
        f"shield: alpha {sh['alpha']}, n {sh['n']}, threshold {sh['threshold']:.6g}; held out by "
        f"{held.get('by')}: test rows blocked {100 * rate:.2f}% (95% interval "
        f"{100 * ci[0]:.2f}..{100 * ci[1]:.2f}%)"
    )
    for b in sh.get("known_bad", []):
        lines.append(f"  known bad: {b['why']}: {'blocked' if b['blocked'] else 'ALLOWED'}")
    lines.append(f"surrogate: {meta.get('surrogate') or 'none'}")
    lines.append(f"discovery: {meta.get('discovery', {}).get('title')}")
    lines.append("files:")
    for rel, e in sorted(meta["files"].items()):
        lines.append(f"  {rel:<28} {e['kind']:<10} {e['size']:>10} B  sha256 {e['sha256'][:16]}..")
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> int:
    meta = _verify_any(args.capsule)
    print(describe(meta))
    print("checksums: ok")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from . import _capsule

    out = _capsule.pack(args.capsule, args.archive)
    print(f"wrote {out}")
    return 0
