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
import math
import mmap
import os
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
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
    # Hashed in place through the buffer protocol (no copy of the bytes).
    return "sha256:" + hashlib.sha256(a.reshape(-1).view(np.uint8)).hexdigest()


def _digest(value: Any) -> str:
    """SHA-256 of a JSON value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def field_checksums(
    meta: dict, arrays: dict[str, np.ndarray], digests: dict[str, str] | None = None
) -> dict[str, str]:
    """One checksum per metadata field and per array: what ``meta["checksum"]`` holds.

    Keys: ``field.NAME`` for each metadata entry but ``checksum`` itself, ``field.NAME.KEY`` for
    each key of an entry that is an object (so an edit is named: ``field.shield.threshold``), and
    ``array.NAME`` for each array (`checksum` of its bytes, with its dtype and shape). Every
    field and array of a file is covered, present and future ones alike. ``digests``: `checksum`
    of some arrays, already computed (by `read_npz`, from the bytes it read).
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
        digest = (digests or {}).get(name) or checksum(a)
        out[f"array.{name}"] = f"{digest}:{a.dtype.str}:{list(a.shape)}"
    return out


def verify_checksums(
    path: Path, meta: dict, arrays: dict[str, np.ndarray], digests: dict[str, str] | None = None
) -> None:
    """Raise `MapFileError` naming the file and the first field or array that does not match.

    ``digests``: `checksum` of some arrays, already computed (see `field_checksums`).
    """
    stored = meta.get("checksum")
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise MapFileError(f"{path}: 'checksum' must be an object of field checksums")
    actual = field_checksums(meta, arrays, digests)
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


# Arrays of at least this many bytes have their CRC-32 computed on a second thread, while the
# reading thread reads the next array and hashes this one (hashlib and zlib release the GIL).
_CRC_THREAD_BYTES = 8 << 20


class _CrcChecks:
    """The zip CRC-32 of the members `_read_stored` read, checked as np.load checks them.

    A context manager: its one worker thread (started for the first large member) is joined on
    exit, however reading ends. `check` raises ``zipfile.BadZipFile`` naming the first member
    whose CRC-32 does not match the zip directory's.
    """

    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[str, int, Any]] = []

    def __enter__(self) -> _CrcChecks:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, name: str, expected: int, head: bytes, data: np.ndarray) -> None:
        """Check that ``crc32(head + data)`` is ``expected`` (now, or on the worker if large)."""

        def crc() -> int:
            return zlib.crc32(data, zlib.crc32(head))

        if data.nbytes < _CRC_THREAD_BYTES:
            self._pending.append((name, expected, crc()))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="groundstate-crc")
        self._pending.append((name, expected, self._pool.submit(crc)))

    def check(self) -> None:
        for name, expected, got in self._pending:
            got = got if isinstance(got, int) else got.result()
            if got != expected:
                raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")


# Arrays of at least this many bytes are read into anonymous memory that is mapped and
# populated in one call (MAP_POPULATE, Linux) instead of taking a page fault per 4 kB page as
# it is first written (for 350 MiB: 0.2 CPU s instead of 0.6 on this 2-core machine under load;
# numpy's large arrays also ask for huge pages, which can mean a compaction under memory
# pressure). Page-aligned, so ``jax.device_put`` on a CPU shares it too.
_POPULATE_BYTES = 8 << 20


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A new, writable, C-ordered array aligned to 64 bytes, its pages mapped when large."""
    from ._grid import aligned_empty  # ._grid imports jax: only when a file is read

    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes >= _POPULATE_BYTES and hasattr(mmap, "MAP_POPULATE"):
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
        try:
            return np.frombuffer(mmap.mmap(-1, nbytes, flags=flags), dtype).reshape(shape)
        except OSError:  # no mapping to be had: the allocator's memory, as for small arrays
            pass
    return aligned_empty(shape, dtype)


def _read_stored(
    fh, zf: zipfile.ZipFile, member: str, crcs: _CrcChecks
) -> tuple[np.ndarray, str] | None:
    """Read a plain, uncompressed ``.npy`` member straight into a new array: ``(array, checksum)``.

    What np.load would return for ``member``, read with one ``readinto`` into a 64-byte-aligned
    array (`_empty`: ``jax.device_put`` on a CPU shares it) instead of a copy per
    chunk, hashed (`checksum`) from that array while the zip CRC-32 is checked on ``crcs``' thread.
    None (the caller lets np.load read it) for anything else: a compressed or encrypted member,
    a Fortran-ordered, big-endian, empty, structured or object array, a header np.load reads
    another way, or a member whose size is not its header plus its data.
    """
    info = zf.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    # zf.open checks the member's local header against the directory, as np.load's read does.
    with zf.open(info) as member_file:
        version = np.lib.format.read_magic(member_file)
        if version not in ((1, 0), (2, 0)):
            return None
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        try:
            shape, fortran_order, dtype = read_header(member_file, max_header_size=10000)
        except ValueError:  # a malformed header: np.load refuses it, with its own words
            return None
        head_len = member_file.tell()
    count = math.prod(shape)
    if (
        fortran_order
        or dtype.kind not in "fiub"
        or dtype.fields is not None
        or dtype.subdtype is not None
        or dtype.newbyteorder("<") != dtype
        or count == 0
        or info.file_size != head_len + count * dtype.itemsize
    ):
        return None
    fh.seek(info.header_offset)
    local = fh.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"Bad local header for file {member!r}")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    fh.seek(info.header_offset + 30 + name_len + extra_len)
    head = fh.read(head_len)
    a = _empty(shape, dtype)
    buf = a.reshape(-1).view(np.uint8)
    done = 0
    while done < buf.size:
        n = fh.readinto(buf[done:])
        if not n:
            raise EOFError(f"member {member!r} ends after {done} of {buf.size} data bytes")
        done += n
    crcs.add(member, info.CRC, head, buf)
    return a, "sha256:" + hashlib.sha256(buf).hexdigest()


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
            with np.load(fh, allow_pickle=False) as f, _CrcChecks() as crcs:
                names = f.zip.namelist()
                # Our own files (one ``NAME.npy`` member per array, every name once) are read
                # straight into their arrays; anything else exactly as np.load reads it.
                simple = len({n.removesuffix(".npy") for n in names}) == len(names) and all(
                    n.endswith(".npy") for n in names
                )
                arrays, digests = {}, {}
                for name in f.files:
                    got = _read_stored(fh, f.zip, f"{name}.npy", crcs) if simple else None
                    if got is not None:
                        arrays[name], digests[name] = got
                        continue
                    try:
                        arrays[name] = f[name]
                    except ValueError as err:
                        raise MapFileError(
                            f"{path}: array {name!r} holds pickled objects, which are refused"
                        ) from err
                crcs.check()
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
    verify_checksums(path, meta, arrays, digests)
    return arrays, meta
