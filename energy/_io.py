"""The ``.npz`` container: plain arrays plus one JSON metadata string, written atomically.

Version 2. Every file holds an array ``meta`` (a 0-d unicode string with JSON) and plain numeric
arrays; nothing is ever pickled. ``meta["checksum"]`` holds one SHA-256 per metadata field (the
fields of a top-level object one by one, e.g. ``shield.threshold``) and per array, written by
`write_npz_atomic` and checked by `read_npz`: every field and array of the file is covered, so an
edited bound, method, threshold or score is refused with an error naming the file and the field.
Reading also checks the container, the format name and version, the array names and dtypes, and
raises `MapFileError` naming the file and what is wrong.

Version 1 (development builds before the field checksums) covered only the energies: it is
refused, since an edited bound or threshold could not be told from a true one. A version 1 map
is upgraded once, explicitly, by `energy.upgrade` (``read_npz(..., accept_version_1=True)``
checks its energies' checksum; the new file gets every field's).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write

FORMAT_VERSION = 2
# The oldest version whose checksum covers every field; older files are refused.
MIN_FORMAT_VERSION = 2


class MapFileError(ValueError):
    """A map or shield file that cannot be read: the message names the file and the problem."""


class MapFileNotFoundError(MapFileError, FileNotFoundError):
    """The file does not exist (both a `MapFileError` and a `FileNotFoundError`)."""


def checksum(array: np.ndarray) -> str:
    """SHA-256 of an array's little-endian, C-ordered bytes, as ``"sha256:<hex>"``."""
    a = np.ascontiguousarray(array)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return "sha256:" + hashlib.sha256(a.tobytes()).hexdigest()


def _digest(value: Any) -> str:
    """SHA-256 of a JSON value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def field_checksums(meta: dict, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """One checksum per metadata field and per array: what ``meta["checksum"]`` holds.

    Keys: ``field.NAME`` for each metadata entry but ``checksum`` itself, ``field.NAME.KEY`` for
    each key of an entry that is an object (so an edit is named: ``field.shield.threshold``), and
    ``array.NAME`` for each array (`checksum` of its bytes, with its dtype and shape). Every
    field and array of a file is covered, present and future ones alike.
    """
    out: dict[str, str] = {}
    for key, value in meta.items():
        if key == "checksum":
            continue
        if isinstance(value, dict):
            out[f"field.{key}"] = _digest(sorted(value))  # which keys exist
            for sub, v in value.items():
                out[f"field.{key}.{sub}"] = _digest(v)
        else:
            out[f"field.{key}"] = _digest(value)
    for name, a in arrays.items():
        a = np.asarray(a)
        out[f"array.{name}"] = f"{checksum(a)}:{a.dtype.str}:{list(a.shape)}"
    return out


def verify_checksums(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Raise `MapFileError` naming the file and the first field or array that does not match."""
    stored = meta.get("checksum")
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise MapFileError(f"{path}: 'checksum' must be an object of field checksums")
    actual = field_checksums(meta, arrays)
    # Deepest keys first: a removed ``shield.bounds`` is named, not only "shield" (its key set).
    for key in sorted(set(stored) | set(actual), key=lambda k: (-k.count("."), k)):
        what = key.replace("field.", "metadata field ", 1).replace("array.", "array ", 1)
        if key not in stored:
            raise MapFileError(
                f"{path}: {what} is not covered by the checksum (added after saving)"
            )
        if key not in actual:
            raise MapFileError(f"{path}: {what} is missing (removed after saving)")
        if stored[key] != actual[key]:
            raise MapFileError(
                f"{path}: checksum mismatch in {what}: the file was changed after it was saved"
            )


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and ``meta`` to ``path`` atomically (`energy._atomic.atomic_write`).

    ``meta["checksum"]`` is (re)computed here with `field_checksums`, over ``meta`` as given and
    every array. A crash mid-write leaves the old file (or no file) in place, never a half-written
    one.
    """
    path = Path(path)
    if "meta" in arrays:
        raise ValueError("'meta' is reserved for the metadata string")
    for name, a in arrays.items():
        if np.asarray(a).dtype.hasobject:
            raise ValueError(f"array {name!r} has an object dtype; only plain arrays are written")
    meta = dict(meta)
    meta["checksum"] = field_checksums(meta, arrays)
    payload = np.array(json.dumps(meta, sort_keys=True))
    atomic_write(path, lambda f: np.savez(f, meta=payload, **arrays), make_parents=True)
    return path


def read_npz(
    path: str | os.PathLike, kind: str, *, accept_version_1: bool = False
) -> tuple[dict[str, np.ndarray], dict]:
    """Read a container written by `write_npz_atomic` and check its metadata header.

    Args:
        path: the file.
        kind: the expected ``meta["format"]`` (for example ``"groundstate.energy_map"``).
        accept_version_1: read a version 1 file, whose ``checksum`` (one string) covers only
            ``energies``, after checking that one (for `energy.upgrade` only).

    Returns:
        ``(arrays, meta)``: every array but ``meta``, and the decoded metadata.

    Raises:
        MapFileError: naming the file and what is wrong (a missing file is also a
            `FileNotFoundError`).
    """
    path = Path(path)
    if not path.exists():
        raise MapFileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise MapFileError(f"{path}: is a directory, not a .npz file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
            fh.seek(0)
            if head == b"\x93NUMPY":
                raise MapFileError(f"{path}: a single .npy array, not a .npz {kind} file")
            if head[:4] != b"PK\x03\x04":
                raise MapFileError(
                    f"{path}: not a .npz file (no zip header; random or wrong bytes)"
                )
            # np.load on our own handle: the handle is closed however reading fails.
            with np.load(fh, allow_pickle=False) as f:
                arrays = {}
                for name in f.files:
                    try:
                        arrays[name] = f[name]
                    except ValueError as err:
                        raise MapFileError(
                            f"{path}: array {name!r} holds pickled objects, which are refused"
                        ) from err
    except MapFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as err:
        raise MapFileError(
            f"{path}: not a readable .npz file ({type(err).__name__}: {err})"
        ) from err
    if "meta" not in arrays:
        raise MapFileError(f"{path}: no 'meta' entry: not a groundstate file")
    meta_arr = arrays.pop("meta")
    if meta_arr.shape != () or meta_arr.dtype.kind != "U":
        raise MapFileError(
            f"{path}: 'meta' must be a JSON string, got {meta_arr.dtype} {meta_arr.shape}"
        )
    try:
        meta = json.loads(str(meta_arr))
    except json.JSONDecodeError as err:
        raise MapFileError(f"{path}: 'meta' is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise MapFileError(f"{path}: 'meta' must be a JSON object")
    if meta.get("format") != kind:
        raise MapFileError(f"{path}: format is {meta.get('format')!r}, expected {kind!r}")
    version = meta.get("version")
    if not isinstance(version, int):
        raise MapFileError(f"{path}: format version missing or not an integer ({version!r})")
    if version > FORMAT_VERSION:
        raise MapFileError(
            f"{path}: format version {version} is newer than this groundstate reads "
            f"({FORMAT_VERSION}); upgrade groundstate"
        )
    if version < 1:
        raise MapFileError(f"{path}: format version {version} is not valid")
    if version < MIN_FORMAT_VERSION and not (accept_version_1 and version == 1):
        if kind == "groundstate.energy_map" and version == 1:
            hint = (
                f"upgrade it once with energy.upgrade({str(path)!r}, NEW_PATH), which checks "
                f"its energies and writes version {FORMAT_VERSION} to NEW_PATH"
            )
        else:
            hint = "build the map (or calibrate the shield) again with this groundstate"
        raise MapFileError(
            f"{path}: format version {version} is refused: its checksum covers only the "
            f"energies, so an edited bound, method or threshold cannot be detected; {hint}"
        )
    for name, a in arrays.items():
        if a.dtype.kind not in "fiub":
            raise MapFileError(f"{path}: array {name!r} has unsupported dtype {a.dtype}")
    if version == 1:
        stored = meta.get("checksum")
        if set(arrays) != {"energies"}:
            raise MapFileError(
                f"{path}: a version 1 map holds 'energies' only, got {sorted(arrays)}"
            )
        if stored != checksum(arrays["energies"]):
            raise MapFileError(
                f"{path}: checksum mismatch in array energies: the file was changed after it "
                "was saved (version 1 checksum)"
            )
        return arrays, meta
    verify_checksums(path, meta, arrays)
    return arrays, meta
