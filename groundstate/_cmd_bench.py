"""``groundstate bench``: run the benchmark suite (``python -m bench``) of a checkout.

The suite lives in the repository's ``bench/`` folder, beside the packages; it runs in a child
process so that ``--backend`` chooses the platform before jax is imported. Every argument is
passed on: ``groundstate bench --quick --backend cpu``, ``groundstate bench report -o B.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``bench`` sub-command."""
    p = subparsers.add_parser(
        "bench",
        help="run the benchmark suite (python -m bench) of a checkout",
        description=__doc__.split("\n\n")[0],
    )
    # The options of ``python -m bench``, declared again so that they parse here (argparse's
    # REMAINDER does not take arguments that begin with an option); checked by python -m bench.
    p.add_argument("--quick", action="store_true", help="small sizes (< 2 min on 2 cores)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    p.add_argument("--backend", help="cpu, gpu or tpu: the platform to run on")
    p.add_argument("--only", help="comma-separated suites")
    p.add_argument("--repeats", help="timed rounds per case")
    p.add_argument("--out", help="folder for the JSON")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="'report [--in ...] [-o OUT.md]'")
    p.set_defaults(func=run)


def bench_argv(args: argparse.Namespace) -> list[str]:
    """The ``python -m bench`` arguments for the parsed ``groundstate bench`` ones."""
    out = [f for f in ("quick", "smoke") if getattr(args, f)]
    out = [f"--{f}" for f in out]
    for name in ("backend", "only", "repeats", "out"):
        value = getattr(args, name)
        if value is not None:
            out += [f"--{name}", str(value)]
    return out + list(args.rest)


def checkout() -> Path | None:
    """The repository root holding ``bench/`` beside this package, or None (installed wheel)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "bench" / "__main__.py").is_file() else None


def run(args: argparse.Namespace) -> int:
    """Run ``python -m bench ARGS`` in the checkout; returns its exit code."""
    root = checkout()
    if root is None:
        print(
            "groundstate bench: the benchmark suite ships with the repository, not the package: "
            "clone it and run 'python -m bench' (or 'pip install -e .[bench]' from the clone)",
            file=sys.stderr,
        )
        return 2
    return subprocess.call([sys.executable, "-m", "bench", *bench_argv(args)], cwd=root)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    sys.exit(run(parser.parse_args(["bench", *sys.argv[1:]])))
