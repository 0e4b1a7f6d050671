"""The command line's persistent compilation cache: where it lives, entries checked, size capped.

JAX's file cache (``jax_compilation_cache_dir``) writes one file per compiled program and reads
it back on the next run with no check of its own beyond decompression, never replaces an entry
that exists, and writes in place (a run killed mid-write leaves a partial file). Around it:

- where: ``GROUNDSTATE_COMPILATION_CACHE`` (an absolute path, or ``off``), else the platform's
  cache folder (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
  ``%LOCALAPPDATA%`` on Windows) + ``groundstate/xla/<host>-<machine>`` (entries are native
  code: one folder per host);
- checked: `MANIFEST` records the SHA-256 and size of every entry a finished command left. Before
  JAX may read the folder, every entry is checked against it: a changed entry, or one no finished
  command recorded (a run killed while writing it), is deleted, so JAX compiles that program
  again and writes a fresh entry, recorded when the command ends. A bad entry is never used and
  never a crash; any error of the cache itself turns the cache off for the run;
- capped: after a command, least recently used entries (access or write time, whichever is
  later; Linux updates access times at most daily under ``relatime``, enough to rank entries)
  are deleted until the folder holds at most `MAX_BYTES`. (JAX's own cap,
  ``jax_compilation_cache_max_size``, needs the ``filelock`` package, which groundstate does not
  require.)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

__all__ = ["ENV", "MAX_BYTES", "cache_folder", "record", "verify"]

ENV = "GROUNDSTATE_COMPILATION_CACHE"
MANIFEST = "groundstate-manifest.json"
# JAX names its entries <key>-cache (and <key>-atime when its own cap is on).
ENTRY_SUFFIX = "-cache"
# 1 GiB: a command's compiled programs take a few MB each, so hundreds of configurations fit;
# checking them all at start reads at most this much (about 0.5 s at 2 GB/s).
MAX_BYTES = 1 << 30


def platform_cache_home() -> Path:
    """The user's cache folder as the platform defines it."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec: a relative XDG_CACHE_HOME is invalid and is ignored.
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


def cache_folder() -> Path | None:
    """The cache folder (None: turned off); a ValueError for a relative path in `ENV`."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in ("off", "0", "false", "no"):
        return None
    if value:
        if not os.path.isabs(os.path.expanduser(value)):
            raise ValueError(
                f"{ENV}={value!r}: the compilation cache needs an absolute path "
                "(or 'off' to turn it off)"
            )
        return Path(os.path.expanduser(value))
    host = f"{platform.node() or 'host'}-{platform.machine()}"
    return platform_cache_home() / "groundstate" / "xla" / host


def _digest(path: Path) -> str:
    """SHA-256 of a file, read without touching its access time where the system allows it
    (Linux ``O_NOATIME``), so that the access times keep saying what JAX used."""
    h = hashlib.sha256()
    flags = os.O_RDONLY | getattr(os, "O_NOATIME", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:  # O_NOATIME on a file we do not own
        fd = os.open(path, flags & ~getattr(os, "O_NOATIME", 0))
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_manifest(folder: Path) -> dict:
    try:
        data = json.loads((folder / MANIFEST).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_manifest(folder: Path, manifest: dict) -> None:
    """Write the manifest atomically (temporary file in the folder, then a rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _entries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(ENTRY_SUFFIX) and p.is_file()]


def verify(folder: Path) -> list[str]:
    """Delete every entry the manifest does not vouch for (hash and size); returns their names."""
    manifest = _read_manifest(folder)
    dropped = []
    for path in _entries(folder):
        want = manifest.get(path.name)
        ok = (
            isinstance(want, dict)
            and want.get("size") == path.stat().st_size
            and want.get("sha256") == _digest(path)
        )
        if not ok:
            path.unlink(missing_ok=True)
            dropped.append(path.name)
    if dropped:
        _write_manifest(folder, {k: v for k, v in manifest.items() if k not in dropped})
    return dropped


def record(folder: Path, max_bytes: int = MAX_BYTES) -> list[str]:
    """Add new entries to the manifest, then delete least recently used ones above ``max_bytes``.

    Returns the names of the entries evicted.
    """
    manifest = _read_manifest(folder)
    entries = _entries(folder)
    names = {p.name for p in entries}
    manifest = {k: v for k, v in manifest.items() if k in names}
    for path in entries:
        if path.name not in manifest:
            manifest[path.name] = {"sha256": _digest(path), "size": path.stat().st_size}
    stats = [(max(p.stat().st_atime, p.stat().st_mtime), p) for p in entries]
    total = sum(manifest[p.name]["size"] for _, p in stats)
    evicted = []
    for _, path in sorted(stats, key=lambda s: s[0]):
        if total <= max_bytes:
            break
        total -= manifest[path.name]["size"]
        path.unlink(missing_ok=True)
        # JAX's access-time file of the entry, when its own cap wrote one
        atime = path.with_name(path.name[: -len(ENTRY_SUFFIX)] + "-atime")
        atime.unlink(missing_ok=True)
        del manifest[path.name]
        evicted.append(path.name)
    _write_manifest(folder, manifest)
    return evicted
