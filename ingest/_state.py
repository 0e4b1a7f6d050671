"""Resumable crawl state: a manifest of finished files with their partial counts, on disk.

Layout, beside the output ``OUT.npz``::

    OUT.npz.ingest-state.lock  held (``fcntl.flock``) by the one run writing OUT.npz
    OUT.npz.ingest-state/
        groundstate-ingest-state.json  the marker: this folder was made by ingest
        config.json        what the crawl asks (roots, variables, units, bins, bounds)
        bounds.json        the bounds once decided (so a resumed crawl bins the same way)
        parts/<h>.npz      one finished file: path, fingerprint, report, sparse counts, and
                           the configuration it was counted under

Every file is written to a temporary name, flushed to disk and renamed (atomic on POSIX), so a
crawl killed at any instant leaves only whole entries; the manifest is the set of parts.

Only what ingest made is ever deleted: a folder is used (and later removed) only when it holds
the marker; a folder without it is refused, whatever it holds. Removal deletes the entries of
the layout above one by one and leaves anything else where it is.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator

import numpy as np

from ._work import FileResult

__all__ = ["BusyError", "CrawlLock", "CrawlState", "StateError", "atomic_write"]

MARKER = "groundstate-ingest-state.json"
_MAGIC = "groundstate ingest crawl state"  # in the marker and the lock file: "made by ingest"
_PART = re.compile(r"^[0-9a-f]{32}\.npz$")  # names of the parts this module writes


class StateError(ValueError):
    """A state folder or lock file that ingest did not make (nothing was changed)."""


class BusyError(OSError):
    """Another run holds the lock of this output (or state folder)."""


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


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def is_state_folder(directory: str) -> bool:
    """Whether ``directory`` holds ingest's marker (so ingest made it)."""
    try:
        with open(os.path.join(directory, MARKER), "rb") as f:
            return json.load(f).get("magic") == _MAGIC
    except (OSError, ValueError, AttributeError):
        return False


class CrawlLock:
    """An exclusive lock on ``path`` (``fcntl.flock``): one run per output at a time.

    The lock file is created when missing and holds who took it (pid, host, time). The kernel
    drops a flock when its process dies, even by ``kill -9``, so a lock is never stale: a file
    left by a killed run is taken over. It is removed on release, while still held; a run that
    opened the old file then finds it gone and starts again on a fresh one.

    Args:
        path: the lock file.
        what: what the lock guards, for the messages (the output or the state folder).

    Raises (from :meth:`acquire`):
        BusyError: another live run holds it.
        StateError: ``path`` is a file that ingest did not write.
        OSError: the folder is not writable (the message names it).
    """

    def __init__(self, path: str | os.PathLike, what: str):
        self.path = os.path.abspath(os.fspath(path))
        self.what = what
        self.fd: int | None = None

    def acquire(self) -> CrawlLock:
        """Take the lock at once or raise (see the class)."""
        while True:
            created = True
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                created = False
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # removed by its holder in between: try again
                except OSError as err:
                    raise OSError(f"cannot open the lock file {self.path}: {err.strerror}") from err
            except OSError as err:
                folder = os.path.dirname(self.path)
                raise OSError(
                    f"cannot write in {folder} (for the lock file of {self.what}): {err.strerror}"
                ) from err
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as err:
                    if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                    holder = self._describe(os.pread(fd, 4096, 0))
                    raise BusyError(
                        f"another ingest{holder} is writing {self.what} (it holds {self.path}); "
                        "wait until it ends, or write another output",
                    ) from None
                st = os.fstat(fd)
                try:
                    now = os.stat(self.path)
                except FileNotFoundError:
                    now = None
                if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                    os.close(fd)  # its holder removed it as we waited: take a fresh one
                    fd = None
                    continue
                if not created and not self._ours(os.pread(fd, 4096, 0)):
                    raise StateError(
                        f"{self.path} exists and is not a lock file of groundstate ingest; "
                        "nothing was changed: move it away (or write another output)"
                    )
                info = _json_bytes(
                    {
                        "magic": _MAGIC,
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "since": _now(),
                    }
                )
                os.ftruncate(fd, 0)
                os.pwrite(fd, info, 0)
            except BaseException:
                if fd is not None:
                    os.close(fd)
                raise
            self.fd = fd
            return self

    @staticmethod
    def _ours(data: bytes) -> bool:
        try:
            return json.loads(data).get("magic") == _MAGIC
        except (ValueError, AttributeError):
            return False

    @staticmethod
    def _describe(data: bytes) -> str:
        try:
            info = json.loads(data)
            return f" (pid {int(info['pid'])} on {info['host']}, since {info['since']})"
        except (ValueError, KeyError, TypeError):
            return ""

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> CrawlLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class CrawlState:
    """The on-disk state of one crawl (see the module docstring).

    Args:
        directory: the state folder: created (with its marker) when missing; an existing one
            must hold the marker, else :class:`StateError` and nothing is touched.
        config: a JSON-able description of the crawl. When a folder holds another crawl's
            configuration, its decided bounds are dropped and its parts stay: each is kept only
            if it was counted under the configuration of this crawl (see :meth:`load`).

    The caller holds the :class:`CrawlLock` of the folder.
    """

    def __init__(self, directory: str, config: dict):
        self.directory = os.path.abspath(directory)
        self.parts = os.path.join(self.directory, "parts")
        self.cleared = False
        cfg_path = os.path.join(self.directory, "config.json")
        if os.path.lexists(self.directory):
            if not os.path.isdir(self.directory):
                raise StateError(
                    f"{self.directory} exists and is not a folder: it cannot hold the crawl "
                    "state; nothing was changed (move it away or write another output)"
                )
            if not is_state_folder(self.directory):
                raise StateError(
                    f"{self.directory} exists and was not made by groundstate ingest (no {MARKER} "
                    "inside); nothing was changed or deleted: move it away or write another output"
                )
            try:
                with open(cfg_path, "rb") as f:
                    same = json.load(f) == json.loads(_json_bytes(config))
            except (OSError, ValueError):
                same = False
            if not same:
                self._unlink(os.path.join(self.directory, "bounds.json"))
                atomic_write(cfg_path, lambda f: f.write(_json_bytes(config)))
                self.cleared = True
            os.makedirs(self.parts, exist_ok=True)
        else:
            self._create(config)

    def _create(self, config: dict) -> None:
        """Make the folder whole (marker, config, parts/) under a temporary name, then rename."""
        parent = os.path.dirname(self.directory)
        tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-" + os.path.basename(self.directory))
        try:
            marker = {"magic": _MAGIC, "created": _now(), "pid": os.getpid()}
            with open(os.path.join(tmp, MARKER), "wb") as f:
                f.write(_json_bytes(marker))
            with open(os.path.join(tmp, "config.json"), "wb") as f:
                f.write(_json_bytes(config))
            os.mkdir(os.path.join(tmp, "parts"))
            os.rename(tmp, self.directory)
        except BaseException:
            for name in ("parts", "config.json", MARKER):
                full = os.path.join(tmp, name)
                if os.path.isdir(full):
                    os.rmdir(full)
                elif os.path.exists(full):
                    os.unlink(full)
            os.rmdir(tmp)
            raise

    @staticmethod
    def _unlink(path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

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
    def save(self, res: FileResult, counted_under: dict | None = None) -> None:
        """Record one finished file (read or skipped) durably, with the configuration
        (variables, units, ranges, bin edges, profile) it was counted under."""
        meta = {
            "path": res.path,
            "fingerprint": list(res.fingerprint),
            "size": res.size,
            "skipped": res.skipped,
            "rows_used": res.rows_used,
            "dropped": res.dropped,
            "units": res.units,
            "counted_under": counted_under,
        }
        arrays = {"meta": np.array(json.dumps(meta))}
        if res.index is not None:
            arrays["index"] = res.index
            arrays["counts"] = res.counts
        atomic_write(self._part(res.path), lambda f: np.savez(f, **arrays))

    def load(self, counted_under: dict | None = None) -> Iterator[tuple[FileResult, bool]]:
        """The recorded files, one at a time, each with whether it was counted under
        ``counted_under`` (a part of another configuration must be recounted). Damaged parts
        are skipped: their files are redone."""
        want = json.loads(json.dumps(counted_under))  # the same JSON round trip as the parts
        for name in sorted(os.listdir(self.parts)):
            full = os.path.join(self.parts, name)
            if name.startswith(".tmp-"):
                self._unlink(full)  # a write the kill interrupted (atomic_write's prefix)
                continue
            if not _PART.match(name):
                continue  # not ours: left alone
            try:
                with np.load(full, allow_pickle=False) as z:
                    meta = json.loads(str(z["meta"]))
                    index = z["index"] if "index" in z else None
                    counts = z["counts"] if "counts" in z else None
            except (OSError, ValueError, KeyError):
                continue
            res = FileResult(
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
            yield res, meta.get("counted_under") == want

    def forget(self, path: str) -> None:
        """Drop a file's record (it changed or vanished)."""
        self._unlink(self._part(path))

    def remove(self) -> bool:
        """Delete the state (the map is written); see :meth:`remove_folder`."""
        return self.remove_folder(self.directory)

    @staticmethod
    def remove_folder(directory: str) -> bool:
        """Delete a state folder that ingest made: only the entries it writes, one by one.

        Returns True when the folder is gone; False when it is not ingest's (untouched) or
        still holds something else (that is left, with the marker, for the user to see).
        """
        directory = os.path.abspath(directory)
        if not os.path.isdir(directory) or not is_state_folder(directory):
            return False
        parts = os.path.join(directory, "parts")
        try:
            names = os.listdir(parts)
        except FileNotFoundError:
            names = []
        for name in names:
            if _PART.match(name) or name.startswith(".tmp-"):
                CrawlState._unlink(os.path.join(parts, name))
        for name in ("config.json", "bounds.json"):
            CrawlState._unlink(os.path.join(directory, name))
        for name in os.listdir(directory):
            if name.startswith(".tmp-"):
                CrawlState._unlink(os.path.join(directory, name))
        try:
            if os.path.isdir(parts):
                os.rmdir(parts)
            if set(os.listdir(directory)) != {MARKER}:
                return False
            os.unlink(os.path.join(directory, MARKER))
            os.rmdir(directory)
        except OSError:
            return False
        return True
