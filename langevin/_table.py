"""Sweep results streamed to a table as chunks finish: CSV, or Parquet when pyarrow is installed.

One row per design (setting x rank): the setting's index and values, the rank, the state, the
energies, the objective and the validity (finite and allowed by the shield). Rows are appended
chunk by chunk to ``PATH.partial`` and the file is renamed to ``PATH`` when the sweep ends, so a
complete ``PATH`` is never half written and an interrupted sweep leaves its finished rows in
``PATH.partial``. An existing ``PATH`` (or ``PATH.partial``) is never overwritten.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

__all__ = ["TableWriter"]


class TableWriter:
    """Append sweep rows to a CSV or Parquet file (by the suffix: ``.parquet`` or anything else).

    Args:
        path: the table to write.
        names: the state's axis names (columns ``x_<name>`` and ``fixed_<name>``).

    Raises:
        FileExistsError: ``path`` or ``path.partial`` exists (naming it).
        ImportError: a ``.parquet`` path without pyarrow installed.
    """

    def __init__(self, path: str | os.PathLike, names: list[str]):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        for p in (self.path, self.partial):
            if p.exists():
                raise FileExistsError(
                    f"sweep output {p} exists; it is not overwritten (remove it or pick another)"
                )
        self.parquet = self.path.suffix.lower() == ".parquet"
        if self.parquet:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ImportError(
                    f"sweep output {self.path}: Parquet needs pyarrow (pip install pyarrow); "
                    "a .csv path needs nothing"
                ) from None
        self.columns = (
            ["setting", "weight", "temperature"]
            + [f"fixed_{n}" for n in names]
            + ["rank"]
            + [f"x_{n}" for n in names]
            + ["energy", "total_energy", "objective", "valid"]
        )
        self.rows = 0
        self._writer = None
        # "x": never an existing file; Parquet is binary, CSV text.
        self._file = (
            open(self.partial, "xb") if self.parquet else open(self.partial, "x", newline="")
        )

    def write(self, first: int, settings: dict, res: dict) -> None:
        """Append the rows of settings ``first .. first + B - 1``.

        Args:
            first: the index of the chunk's first setting in the sweep.
            settings: ``weight`` (B,), ``temperature`` (B,), ``fixed`` (B, d) (NaN: free).
            res: ``positions`` (B, k, d), ``energies``, ``total_energies``, ``valid`` (B, k) and
                ``objective`` (B, k) or None.
        """
        pos = np.asarray(res["positions"])
        b, k, d = pos.shape
        rep = lambda a: np.repeat(np.asarray(a), k, axis=0)  # noqa: E731 (per setting -> per row)
        cols = {
            "setting": rep(np.arange(first, first + b)),
            "weight": rep(settings["weight"]),
            "temperature": rep(settings["temperature"]),
        }
        fixed = rep(settings["fixed"])
        for j, name in enumerate(self.columns[3 : 3 + d]):
            cols[name] = fixed[:, j]
        cols["rank"] = np.tile(np.arange(k), b)
        flat = pos.reshape(b * k, d)
        for j, name in enumerate(self.columns[4 + d : 4 + 2 * d]):
            cols[name] = flat[:, j]
        cols["energy"] = np.asarray(res["energies"]).reshape(-1)
        cols["total_energy"] = np.asarray(res["total_energies"]).reshape(-1)
        obj = res.get("objective")
        cols["objective"] = np.full(b * k, np.nan) if obj is None else np.asarray(obj).reshape(-1)
        cols["valid"] = np.asarray(res["valid"]).reshape(-1)
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({c: cols[c] for c in self.columns})
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._file, table.schema)
            self._writer.write_table(table)
        else:
            w = csv.writer(self._file)
            if self.rows == 0:
                w.writerow(self.columns)
            arrays = [cols[c] for c in self.columns]
            for i in range(b * k):
                w.writerow([_cell(a[i]) for a in arrays])
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows += b * k

    def close(self, complete: bool = True) -> Path:
        """Close the file; a complete table is renamed from ``PATH.partial`` to ``PATH``."""
        if self._writer is not None:
            self._writer.close()
        self._file.close()
        if not complete:
            return self.partial
        if self.path.exists():
            raise FileExistsError(f"sweep output {self.path} appeared meanwhile; kept as it is")
        os.replace(self.partial, self.path)
        return self.path


def _cell(v):
    if isinstance(v, np.bool_ | bool):
        return int(v)
    if isinstance(v, np.floating | float):
        return repr(float(v))  # shortest exact round trip
    return int(v)
