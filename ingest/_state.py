"""Resumable crawl state: a manifest of finished files with their partial counts, on disk.

Layout, beside the output ``OUT.npz``::

    OUT.npz.ingest-state/
        config.json        what the crawl asks (variables, units, bins, bounds): a key
        bounds.json        the bounds once decided (so a resumed crawl bins the same way)
        parts/<h>.npz      one finished file: path, fingerprint, report, sparse counts

Every file is written to a temporary name, flushed to disk and renamed (atomic on POSIX), so a
crawl killed at any instant leaves only whole entries; the manifest is the set of parts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np

from ._work import FileResult

__all__ = ["CrawlState", "atomic_write"]


def atomic_write(path: str, write) -> None:
    """Write a file through ``write(fileobj)`` to a temporary name, fsync, then rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=1).encode()


class CrawlState:
    """The on-disk state of one crawl (see the module docstring).

    Args:
        directory: the state folder (created when missing).
        config: a JSON-able description of the crawl; a folder holding another crawl's
            state is cleared.
    """

    def __init__(self, directory: str, config: dict):
        self.directory = os.path.abspath(directory)
        self.parts = os.path.join(self.directory, "parts")
        self.cleared = False
        cfg_path = os.path.join(self.directory, "config.json")
        if os.path.isdir(self.directory):
            try:
                with open(cfg_path, "rb") as f:
                    same = json.load(f) == json.loads(_json_bytes(config))
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.directory)
                self.cleared = True
        os.makedirs(self.parts, exist_ok=True)
        if not os.path.exists(cfg_path):
            atomic_write(cfg_path, lambda f: f.write(_json_bytes(config)))

    def _part(self, path: str) -> str:
        h = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()
        return os.path.join(self.parts, h + ".npz")

    # bounds -------------------------------------------------------------------------------
    def load_bounds(self):
        """The bounds stored by an earlier run, or None."""
        try:
            with open(os.path.join(self.directory, "bounds.json"), "rb") as f:
                return [tuple(b) for b in json.load(f)]
        except (OSError, ValueError):
            return None

    def save_bounds(self, bounds) -> None:
        """Store the decided bounds."""
        data = _json_bytes([[float(lo), float(hi)] for lo, hi in bounds])
        atomic_write(os.path.join(self.directory, "bounds.json"), lambda f: f.write(data))

    # parts --------------------------------------------------------------------------------
    def save(self, res: FileResult) -> None:
        """Record one finished file (read or skipped) durably."""
        meta = {
            "path": res.path,
            "fingerprint": list(res.fingerprint),
            "size": res.size,
            "skipped": res.skipped,
            "rows_used": res.rows_used,
            "dropped": res.dropped,
            "units": res.units,
        }
        arrays = {"meta": np.array(json.dumps(meta))}
        if res.index is not None:
            arrays["index"] = res.index
            arrays["counts"] = res.counts
        atomic_write(self._part(res.path), lambda f: np.savez(f, **arrays))

    def load(self) -> Iterator[FileResult]:
        """The recorded files, one at a time (damaged parts are skipped: their files are redone)."""
        for name in sorted(os.listdir(self.parts)):
            full = os.path.join(self.parts, name)
            if name.startswith(".tmp-"):
                os.unlink(full)  # a write the kill interrupted
                continue
            try:
                with np.load(full, allow_pickle=False) as z:
                    meta = json.loads(str(z["meta"]))
                    index = z["index"] if "index" in z else None
                    counts = z["counts"] if "counts" in z else None
            except (OSError, ValueError, KeyError):
                continue
            yield FileResult(
                path=meta["path"],
                fingerprint=tuple(meta["fingerprint"]),
                size=meta["size"],
                skipped=meta["skipped"],
                rows_used=meta["rows_used"],
                dropped=meta["dropped"],
                units=meta["units"],
                index=index,
                counts=counts,
            )

    def forget(self, path: str) -> None:
        """Drop a file's record (it changed or vanished)."""
        try:
            os.unlink(self._part(path))
        except FileNotFoundError:
            pass

    def remove(self) -> None:
        """Delete the whole state folder (the map is written)."""
        self.remove_folder(self.directory)

    @staticmethod
    def remove_folder(directory: str) -> None:
        """Delete a state folder."""
        shutil.rmtree(directory, ignore_errors=True)
