"""Recorded draws streamed to files: ``thin=k`` traces written chunk by chunk, never all in memory.

A trace folder holds ``trajectory.npy`` ``(n_draws, n_chains, d)`` and ``energy_trace.npy``
``(n_draws, n_chains)``, plain ``.npy`` files (``np.load(path, mmap_mode="r")`` reads them) whose
full size is set when the run starts (sparse until written); each chunk of draws is written at
its offset with ``os.pwrite``, so memory holds a chunk or two (the one written while the next is
computed) whatever the run's length, and a run resumed from a checkpoint writes on from where its
checkpoint stands (the files are synced to the disk before each checkpoint is saved). ``trace.json`` (written
first) marks the folder as this code's; an existing folder of anything else is refused, never
overwritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["TraceFiles"]

MARKER = "trace.json"
FORMAT = "groundstate-langevin-trace"


class TraceFiles:
    """The trace folder of one run.

    Args:
        directory: the folder (created when missing; an existing one must be empty or a trace of
            the same shapes, e.g. of the run being resumed).
        n_draws, n_chains, d: the shapes of the trace.
        dtype: of the states and energies.
        resume: True when continuing a checkpointed run (its trace folder is then reused).

    Raises:
        FileExistsError: the folder holds anything else (naming it).
    """

    def __init__(
        self, directory, n_draws: int, n_chains: int, d: int, dtype, *, resume: bool = False
    ):
        self.root = Path(directory).expanduser().absolute()
        self.dtype = np.dtype(dtype)
        meta = {
            "format": FORMAT,
            "n_draws": int(n_draws),
            "n_chains": int(n_chains),
            "d": int(d),
            "dtype": self.dtype.str,
        }
        self.shapes = {
            "trajectory": (int(n_draws), int(n_chains), int(d)),
            "energy_trace": (int(n_draws), int(n_chains)),
        }
        marker = self.root / MARKER
        if self.root.exists() and not self.root.is_dir():
            raise FileExistsError(f"trace {self.root} exists and is not a folder")
        existing = self.root.is_dir() and any(self.root.iterdir())
        if existing:
            try:
                stored = json.loads(marker.read_text())
            except (OSError, ValueError):
                stored = None
            if stored is None or stored.get("format") != FORMAT:
                raise FileExistsError(
                    f"trace folder {self.root} is not empty and is not a langevin trace: nothing "
                    "is written there (pick a new or empty folder)"
                )
            if not resume or stored != meta:
                raise FileExistsError(
                    f"trace folder {self.root} holds the trace of another run "
                    f"({stored}); it is not overwritten (remove it or pick another folder)"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        if not existing:
            marker.write_text(json.dumps(meta))
        self._fds = {}
        self._offsets = {}
        for name, shape in self.shapes.items():
            path = self.root / f"{name}.npy"
            header = {"descr": self.dtype.str, "fortran_order": False, "shape": shape}
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            if not existing:
                with os.fdopen(os.dup(fd), "wb") as f:
                    np.lib.format.write_array_header_2_0(f, header)
                    start = f.tell()
                os.ftruncate(fd, start + int(np.prod(shape)) * self.dtype.itemsize)
            else:
                with open(path, "rb") as f:
                    np.lib.format.read_magic(f)
                    np.lib.format.read_array_header_2_0(f)
                    start = f.tell()
            self._fds[name] = fd
            self._offsets[name] = start

    def write(self, first: int, trajectory, energy_trace) -> None:
        """Write draws ``first .. first + q - 1`` (arrays ``(q, n_chains, ...)``)."""
        for name, a in (("trajectory", trajectory), ("energy_trace", energy_trace)):
            a = np.ascontiguousarray(np.asarray(a, dtype=self.dtype))
            row = int(np.prod(self.shapes[name][1:])) * self.dtype.itemsize
            if a.shape[1:] != self.shapes[name][1:] or first + a.shape[0] > self.shapes[name][0]:
                raise ValueError(f"{name} chunk of shape {a.shape} at draw {first} does not fit")
            os.pwrite(self._fds[name], memoryview(a).cast("B"), self._offsets[name] + first * row)

    def sync(self) -> None:
        """Flush the draws written so far to the disk (before a checkpoint says they are there)."""
        for fd in self._fds.values():
            os.fsync(fd)

    def close(self) -> None:
        """Flush and close the files."""
        self.sync()
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The trace as read-only memory maps ``(trajectory, energy_trace)``."""
        return tuple(np.load(self.root / f"{name}.npy", mmap_mode="r") for name in self.shapes)
