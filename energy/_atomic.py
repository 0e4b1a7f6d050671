"""One atomic file write for the whole project (maps, shields, surrogates, state, capsules, CSVs).

A reader never sees a half-written file: the bytes go to a new hidden file in the same folder,
are flushed and fsync'ed, and the file is renamed over the target (``os.replace``, atomic on
POSIX and Windows); then the folder is fsync'ed where the platform allows, so the rename itself
survives a power cut. A failure (or Ctrl-C) mid-write removes the temporary file and leaves the
old target, or no target, in place.

Permissions: the temporary file is created with ``os.open(..., 0o666)``, so the kernel applies
the process umask exactly as for a plain ``open(path, "w")``; the umask is never read or changed
(``os.umask`` is process-wide and racy with threads).

This module imports only the standard library: any package (``ingest``, ``groundstate``) may use
it without loading JAX.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "fsync_folder", "is_temporary"]

# File modes for a plain ``open()``: the kernel masks them with the umask.
_FILE_MODE = 0o666
# The temporary name: ".<target name>.<12 hex digits>.tmp" (hidden: crawls skip it).
_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_temporary(name: str) -> bool:
    """True for the name of a temporary file `atomic_write` makes (left behind only by a kill)."""
    return _TEMPORARY.fullmatch(name) is not None


def _open_temporary(path: Path) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:  # a 48-bit random name: a clash is astronomically rare; retry if one happens
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, _FILE_MODE), tmp
        except FileExistsError:
            continue


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[bytes]], Any],
    *,
    make_parents: bool = False,
    sync: bool = True,
) -> Path:
    """Write ``path`` atomically through ``write(fileobj)`` (a binary file object).

    Args:
        path: the target file; replaced whole, or left as it was if anything fails.
        write: called once with the open temporary file (binary mode).
        make_parents: create missing parent folders first.
        sync: fsync the file and the folder (default). ``False`` keeps the rename atomic for
            other processes but lets an OS crash lose or truncate the file: only for files whose
            reader checks them (ingest's checksummed resume parts).

    Returns:
        The target path.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> _ = atomic_write(p, lambda f: f.write(b"hello"))
        >>> p.read_bytes()
        b'hello'
    """
    path = Path(os.fspath(path)).absolute()
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync:
        fsync_folder(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, make_parents: bool = False) -> Path:
    """`atomic_write` of a bytes object."""
    return atomic_write(path, lambda f: f.write(data), make_parents=make_parents)
