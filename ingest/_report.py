"""The report of a crawl: files read, files skipped with their reasons, rows used and dropped."""

from __future__ import annotations

import dataclasses

__all__ = ["IngestReport"]


@dataclasses.dataclass
class IngestReport:
    """What a crawl did, file by file and row by row.

    Attributes:
        files_read: paths read and counted (sorted).
        files_skipped: ``(path, reason)`` pairs (sorted by path): corrupt, permission denied,
            no matching variables, bad units, ...
        rows_used: rows counted into the histogram.
        rows_dropped: reason -> rows (``missing value``, ``out of physical range``,
            ``outside bounds``, ``junk line``).
        bytes_read: total size of the files read.
        files_resumed: files whose counts came from an earlier, interrupted run.
        units: variable -> the units its files stated (sorted, unique).
        notes: what the crawl changed or redid on its own, one line each (bins shrunk to the
            node cap, parts of an earlier run recounted under this configuration).
    """

    files_read: list[str] = dataclasses.field(default_factory=list)
    files_skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    rows_used: int = 0
    rows_dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    bytes_read: int = 0
    files_resumed: int = 0
    units: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def rows_total(self) -> int:
        """Rows seen: used plus dropped."""
        return self.rows_used + sum(self.rows_dropped.values())

    def to_dict(self) -> dict:
        """A JSON-able dict (for the map's provenance)."""
        return {
            "files_read": list(self.files_read),
            "files_skipped": [[p, r] for p, r in self.files_skipped],
            "rows_used": int(self.rows_used),
            "rows_dropped": {k: int(v) for k, v in self.rows_dropped.items()},
            "bytes_read": int(self.bytes_read),
            "units_in_files": {k: list(v) for k, v in self.units.items()},
            **({"notes": list(self.notes)} if self.notes else {}),
        }

    def __str__(self) -> str:
        lines = [
            f"files read: {len(self.files_read)} ({self.bytes_read / 1e6:.1f} MB)"
            + (f", {self.files_resumed} from an earlier run" if self.files_resumed else ""),
            f"files skipped: {len(self.files_skipped)}",
        ]
        lines += [f"  {path}: {reason}" for path, reason in self.files_skipped]
        lines.append(f"rows used: {self.rows_used}")
        dropped = sum(self.rows_dropped.values())
        lines.append(f"rows dropped: {dropped}")
        lines += [f"  {reason}: {n}" for reason, n in self.rows_dropped.items()]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)
