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
        add_help=False,  # --help goes to python -m bench
    )
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments of python -m bench")
    p.set_defaults(func=run)


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
    return subprocess.call([sys.executable, "-m", "bench", *args.bench_args], cwd=root)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    sys.exit(run(parser.parse_args(["bench", *sys.argv[1:]])))
