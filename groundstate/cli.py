"""The ``groundstate`` command: one sub-command per module, each registered in ``_COMMANDS``.

Every sub-command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from pathlib import Path

from . import __version__, _compilation_cache

# Sub-command modules, imported lazily so that ``groundstate --help`` stays fast.
_COMMANDS = (
    "groundstate._cmd_demo",
    "groundstate._cmd_ingest",
    "groundstate._cmd_shield",
    "groundstate._cmd_sample",
    "groundstate._cmd_onboard",
    "groundstate._cmd_bench",
    "groundstate._cmd_capsule",
    "groundstate._cmd_info",
    "groundstate._cmd_fit",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="groundstate",
        description="Energy landscapes from recorded physical data: ingest, shield, sample.",
    )
    parser.add_argument("--version", action="version", version=f"groundstate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # a sub-command not built yet in this checkout
            if err.name != name:
                raise
            continue
        module.register(sub)
    return parser


# Options whose value may start with a minus sign ("--bounds -5:5,0:10"): argparse would take
# such a value for an option, so it is glued to its option ("--bounds=-5:5,0:10") first.
_NEGATIVE_VALUE_OPTIONS = ("--bounds",)


def _glue_negative_values(argv: list[str]) -> list[str]:
    """``["--bounds", "-5:5"]`` -> ``["--bounds=-5:5"]`` for the options above."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if (
            arg in _NEGATIVE_VALUE_OPTIONS
            and len(nxt) > 1
            and nxt[0] == "-"
            and nxt[1] in "0123456789."
        ):
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def enable_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache for the command line; returns its folder.

    A command compiles its chains and kernels once; the next run of the same command on the same
    machine loads them from the cache instead of compiling again. The folder is
    ``GROUNDSTATE_COMPILATION_CACHE`` (an absolute path; ``off`` turns the cache off), else the
    platform's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches``
    on macOS) under ``groundstate/xla/<host>``. Every entry is checked against the hashes the
    last finished commands recorded before JAX may read it (a bad entry is deleted and compiled
    again); see `groundstate._compilation_cache`. Nothing is changed when
    ``JAX_COMPILATION_CACHE_DIR`` or jax's own setting is already given. A relative path in
    ``GROUNDSTATE_COMPILATION_CACHE`` is a ValueError.
    """
    folder = _compilation_cache.cache_folder()  # the ValueError for a relative path comes first
    if folder is None:
        return None
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _compilation_cache.verify(folder)
    except OSError:  # a read-only home or an unreadable folder: compile every time
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Only programs that took a while to compile are worth a disk entry.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return str(folder)


class _LazyCompilationCache:
    """The compilation cache of a command that compiles late (``ingest``: a crawl in NumPy,
    then one map build): `enable_compilation_cache` (which imports jax, ~1 s) runs when the
    command calls `wait`, just before its first compile, so that the command starts its own work
    (ingest: the readers' fork server) first. In the calling thread: importing jax from two
    threads at once fails (circular imports seen half-initialised). An error of the cache itself
    turns the cache off, never fails the command."""

    def __init__(self):
        self.asked = False
        self.folder: str | None = None

    def wait(self) -> str | None:
        """Set the cache up (once) and return its folder (None: off)."""
        if not self.asked:
            self.asked = True
            try:
                self.folder = enable_compilation_cache()
            except Exception:  # noqa: BLE001 - the cache is an optimisation: off on any error
                self.folder = None
        return self.folder


def _record_compilation_cache(folder: str | None) -> None:
    """After a finished command: hash its new cache entries and keep the cache under its cap."""
    if folder is None:
        return
    try:
        _compilation_cache.record(Path(folder))
    except OSError:  # never fail a command that has done its work because of the cache
        pass


def _interrupted() -> int:
    """Ctrl-C: say so and exit 130 now, even while a compiled program runs in a worker thread."""
    print("groundstate: interrupted", file=sys.stderr)
    if threading.active_count() > 1:
        # Python's exit would wait for the worker's compiled loop; nothing is half written (the
        # outputs are written atomically by the main thread), so leave at once.
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(130)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``groundstate`` console script."""
    parser = build_parser()
    args = parser.parse_args(_glue_negative_values(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # Ctrl-C raises KeyboardInterrupt even when the caller started us with SIGINT ignored
    # (a background job of a non-interactive shell).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    lazy = None
    try:
        if getattr(args, "lazy_compilation_cache", False):
            # A command that imports jax only for its last step (ingest): the cache is set up
            # when the command asks (args.compilation_cache), not before it starts.
            _compilation_cache.cache_folder()  # a bad GROUNDSTATE_COMPILATION_CACHE: now
            cache = None
            lazy = args.compilation_cache = _LazyCompilationCache()
        else:
            cache = enable_compilation_cache()
        code = int(args.func(args) or 0)
    except KeyboardInterrupt:
        return _interrupted()
    except (ValueError, OSError) as err:
        print(f"groundstate {args.command}: error: {err}", file=sys.stderr)
        return 1
    if lazy is not None and lazy.asked:
        cache = lazy.folder
    _record_compilation_cache(cache)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
