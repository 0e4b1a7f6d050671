"""Checkpoints of long runs: a run's state at chunk boundaries, saved with orbax, verified on load.

A checkpoint folder holds:

- ``groundstate-checkpoint.json``: the marker (written first): the format, the configuration of
  the run it belongs to (and its SHA-256), and whether this code created the folder;
- ``step-<position>/``: an orbax ``StandardCheckpointer`` save of the state's arrays (orbax writes
  into a temporary folder and renames it when complete);
- ``step-<position>.json``: written last, atomically: the position and the SHA-256 of every array.
  A step without it is an unfinished save and is never used.

Loading takes the newest complete step whose arrays restore with the expected shapes and
dtypes and hash to what was recorded; the folder of a different configuration is refused with
an error that names what differs. Only files and folders this code wrote are ever removed: the
folder itself only when the marker says it created it.

Under ``jax.distributed`` (several processes) the folder is one, shared by all processes (a file
system every host sees, as orbax's own multi-host checkpoints assume). Every process holds the
whole state (gathered before a save); process 0 writes the marker, the records and removes old
steps; orbax writes the arrays from its primary host (process 0) with every process taking part
in its save and restore. Every decision that makes a process wait for the others (save or skip,
which step to load) is taken on process 0's view and broadcast, so that no process waits at a
barrier the others skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np

__all__ = ["Checkpoint", "CheckpointError"]

FORMAT = "groundstate-langevin-checkpoint"
VERSION = 1
MARKER = "groundstate-checkpoint.json"
_STEP = re.compile(r"^step-(\d{12})$")
KEEP = 2  # complete steps kept: the newest and one before it, should the newest be damaged


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used (another run's, damaged, or not ours)."""


def _many() -> bool:
    """Several processes (``jax.distributed``): the folder is shared, process 0 writes."""
    return jax.process_count() > 1


def _barrier(name: str) -> None:
    """Every process waits here for the others (a no-op in one process)."""
    if _many():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"groundstate-checkpoint:{name}")


def _from_zero(value: int) -> int:
    """Process 0's ``value`` in every process (an integer; itself in one process)."""
    if not _many():
        return int(value)
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.asarray(value, np.int64)))


def _ours(name: str) -> bool:
    """A name this code writes in a checkpoint folder (steps, records, temporaries, the marker)."""
    return name.startswith("step-") or name == MARKER or name.startswith(MARKER + ".")


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _atomic_json(path: Path, obj) -> None:
    """Write JSON to ``path`` through a temporary file in the same folder, fsync'd, renamed."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        name = f"{prefix}{k}"
        if k not in a or k not in b:
            out.append(f"{name}: {a.get(k, '(absent)')!r} here, {b.get(k, '(absent)')!r} stored")
        elif isinstance(a[k], dict) and isinstance(b[k], dict):
            out.extend(_differences(a[k], b[k], name + "."))
        elif a[k] != b[k]:
            out.append(f"{name}: {a[k]!r} here, {b[k]!r} stored")
    return out


class Checkpoint:
    """The checkpoint folder of one run configuration.

    Args:
        directory: the folder (created with its parents when missing).
        config: JSON-able description of the run; a folder written for another one is refused.

    Raises:
        CheckpointError: the folder exists and is neither empty nor a checkpoint of this code,
            or it holds a checkpoint of a different configuration (the message lists what
            differs).
    """

    def __init__(self, directory: str | os.PathLike, config: dict):
        self.root = Path(directory).expanduser().absolute()
        self.config = json.loads(json.dumps(config, sort_keys=True))  # as it reads back
        self.config_sha = hashlib.sha256(
            json.dumps(self.config, sort_keys=True).encode()
        ).hexdigest()
        self.writer = jax.process_index() == 0
        if not _many():
            self._open()
            return
        # Process 0 checks (and creates) the folder; the others then only check the marker.
        error = None
        if self.writer:
            try:
                self._open()
            except CheckpointError as err:
                error = err
        if _from_zero(error is not None):
            if error is not None:
                raise error
            raise CheckpointError(
                f"checkpoint {self.root}: refused by process 0 (its error says why)"
            )
        if not self.writer:
            self._check_marker(self.root / MARKER)
        _barrier("opened")

    def _open(self) -> None:
        """Check the folder, clean what a killed save left, or create it with its marker."""
        marker = self.root / MARKER
        if self.root.exists() and not self.root.is_dir():
            raise CheckpointError(f"checkpoint {self.root} exists and is not a folder")
        if marker.is_file():
            self._check_marker(marker)
            self._clean_unfinished()
            return
        if self.root.is_dir() and any(self.root.iterdir()):
            raise CheckpointError(
                f"checkpoint folder {self.root} is not empty and holds no {MARKER}: not a "
                "langevin checkpoint; nothing is written there (pick a new or empty folder)"
            )
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_json(
            marker,
            {
                "format": FORMAT,
                "version": VERSION,
                "created_folder": created,
                "config": self.config,
                "config_sha256": self.config_sha,
            },
        )

    def _check_marker(self, marker: Path) -> None:
        try:
            meta = json.loads(marker.read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{marker}: unreadable ({err})") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{marker}: not a {FORMAT} marker")
        if meta.get("version") != VERSION:
            raise CheckpointError(
                f"{marker}: format version {meta.get('version')!r}, this code reads {VERSION}"
            )
        if meta.get("config_sha256") != self.config_sha:
            diff = _differences(self.config, meta.get("config") or {})
            raise CheckpointError(
                f"checkpoint {self.root} belongs to a different run configuration; it is left "
                "as it is. Use another folder, or remove this one to start afresh. Differences: "
                + ("; ".join(diff[:8]) if diff else "(the stored configuration is damaged)")
            )

    def _clean_unfinished(self) -> None:
        """Remove what a killed save of ours left: temporary files and folders, bare arrays."""
        for p in list(self.root.iterdir()):
            unfinished = p.name.endswith(".tmp") or ".orbax-checkpoint-tmp" in p.name
            bare = _STEP.match(p.name) and not (self.root / (p.name + ".json")).exists()
            if _ours(p.name) and (unfinished or bare):
                shutil.rmtree(p) if p.is_dir() else p.unlink()

    # ---------------------------------------------------------------------------- steps
    def _steps(self) -> list[int]:
        """Positions of the complete steps (arrays and their record), newest first."""
        out = []
        for p in self.root.iterdir():
            m = _STEP.match(p.name)
            if m and p.is_dir() and (self.root / (p.name + ".json")).is_file():
                out.append(int(m.group(1)))
        return sorted(out, reverse=True)

    def save(self, position: int, state: dict) -> None:
        """Save ``state`` (a dict of arrays) as the run's state at ``position``; atomic."""
        import orbax.checkpoint as ocp  # slow to import: only when checkpointing

        host = {k: np.asarray(jax.device_get(v)) for k, v in state.items()}
        name = f"step-{int(position):012d}"
        path = self.root / name
        record = self.root / (name + ".json")
        # The same position saved before (a resumed run): keep that one.
        if _from_zero(record.exists()):
            return
        if self.writer and path.exists():  # arrays without their record: an unfinished save
            shutil.rmtree(path)
        _barrier(f"save {name}")
        with ocp.StandardCheckpointer() as ckpt:  # every process takes part; process 0 writes
            ckpt.save(path, host)
            ckpt.wait_until_finished()
        if not self.writer:
            _barrier(f"saved {name}")
            return
        _atomic_json(
            record,
            {
                "position": int(position),
                "config_sha256": self.config_sha,
                "arrays": {
                    k: {"sha256": _digest(a), "shape": list(a.shape), "dtype": a.dtype.str}
                    for k, a in host.items()
                },
            },
        )
        for old in self._steps()[KEEP:]:
            self._remove_step(old)
        _barrier(f"saved {name}")

    def _remove_step(self, position: int) -> None:
        name = f"step-{position:012d}"
        rec = self.root / (name + ".json")
        if rec.exists():
            rec.unlink()  # the record first: the arrays are then an unfinished save
        if (self.root / name).exists():
            shutil.rmtree(self.root / name)

    def load(self, like: dict) -> tuple[int, dict] | None:
        """The newest verified step as ``(position, arrays)``, or None when there is none.

        Args:
            like: arrays (or ``ShapeDtypeStruct``) with the shapes and dtypes the state must have.

        Raises:
            CheckpointError: complete steps exist but none restores and verifies (the message
                says why for each).
        """
        import orbax.checkpoint as ocp  # slow to import: only when checkpointing

        problems = []
        for position in self._steps():
            name = f"step-{position:012d}"
            try:
                rec = json.loads((self.root / (name + ".json")).read_text())
                want = rec["arrays"]
            except (OSError, ValueError, KeyError, TypeError) as err:
                problems.append(f"{name}: unreadable record ({err})")
                continue
            expect = {
                k: {"shape": list(np.shape(v)), "dtype": np.dtype(v.dtype).str}
                for k, v in like.items()
            }
            got = {k: {"shape": v.get("shape"), "dtype": v.get("dtype")} for k, v in want.items()}
            if expect != got or rec.get("position") != position:
                diff = _differences(expect, got)
                problems.append(f"{name}: arrays do not match this run ({'; '.join(diff[:4])})")
                continue
            target = {
                k: jax.ShapeDtypeStruct(
                    np.shape(v),
                    np.dtype(v.dtype),
                    sharding=jax.sharding.SingleDeviceSharding(jax.local_devices()[0]),
                )
                for k, v in like.items()
            }
            try:
                with ocp.StandardCheckpointer() as ckpt:
                    restored = ckpt.restore(self.root / name, target)
            except Exception as err:  # orbax raises many kinds by case
                problems.append(f"{name}: arrays could not be restored ({type(err).__name__})")
                continue
            arrays = {k: np.asarray(restored[k]) for k in like}
            bad = [k for k, a in arrays.items() if _digest(a) != want[k]["sha256"]]
            if bad:
                problems.append(f"{name}: checksum mismatch in {bad}")
                continue
            return self._agreed(position), arrays
        if problems:
            raise CheckpointError(f"checkpoint {self.root}: no usable step: " + "; ".join(problems))
        self._agreed(-1)
        return None

    def _agreed(self, position: int) -> int:
        """``position`` once every process has loaded the same one (-1: none)."""
        if _many() and _from_zero(position) != position:
            raise CheckpointError(
                f"checkpoint {self.root}: process {jax.process_index()} loaded step {position}, "
                f"process 0 another: is the folder shared by every host?"
            )
        return position

    def remove(self) -> None:
        """Remove what this code wrote here (the folder too when it created it)."""
        _barrier("remove")
        if not self.writer:
            return
        marker = self.root / MARKER
        try:
            created = bool(json.loads(marker.read_text()).get("created_folder"))
        except (OSError, ValueError):
            return
        for p in list(self.root.iterdir()):
            if _ours(p.name) and p.name != MARKER:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        marker.unlink()  # last: until then the folder is still known as ours
        if created:
            try:
                self.root.rmdir()  # only when empty: a file someone put there stays
            except OSError:
                pass
