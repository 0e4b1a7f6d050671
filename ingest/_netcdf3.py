"""A small streaming reader of NetCDF 3 files: classic (CDF-1), 64-bit offset (CDF-2), CDF-5.

Own code rather than ``scipy.io.netcdf_file`` (no CDF-5, whole-variable reads or mmap views that
must be released before closing) or ``netCDF4`` (a dev-only dependency): the format is a header
of dimensions, attributes and variables followed by big-endian arrays, the record variables
interleaved record by record. See the NetCDF "Classic and 64-bit Offset File Format" and
"CDF-5" specifications (Unidata).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

__all__ = ["NC3File", "NC3FormatError", "NC3Variable"]

_TYPES = {
    1: np.dtype("i1"),
    2: np.dtype("S1"),
    3: np.dtype(">i2"),
    4: np.dtype(">i4"),
    5: np.dtype(">f4"),
    6: np.dtype(">f8"),
    7: np.dtype("u1"),  # CDF-5 only, from here on
    8: np.dtype(">u2"),
    9: np.dtype(">u4"),
    10: np.dtype(">i8"),
    11: np.dtype(">u8"),
}
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 0x0A, 0x0B, 0x0C
_STREAMING = 0xFFFFFFFF


class NC3FormatError(ValueError):
    """A NetCDF 3 file whose header is malformed or whose data lies past the end of the file."""


@dataclasses.dataclass
class NC3Variable:
    """One variable: name, shape, big-endian dtype, attributes and where its data lies."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: np.dtype
    attrs: dict
    begin: int
    is_record: bool


class _ShortHeader(NC3FormatError):
    """The header runs past the bytes read so far."""


def _pad4(n: int) -> int:
    return (n + 3) & ~3


class _Header:
    """Cursor over the header bytes with the integer widths of one format version."""

    def __init__(self, data: bytes, version: int, path: str):
        self.data, self.pos, self.path = data, 4, path
        self.count = 8 if version == 5 else 4  # nelems, ndims, dim lengths, vsize
        self.offset = 4 if version == 1 else 8  # begin

    def need(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _ShortHeader(f"{self.path}: truncated NetCDF header")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self, width: int) -> int:
        return int.from_bytes(self.need(width), "big")

    def name(self) -> str:
        n = self.int(self.count)
        raw = self.need(_pad4(n))[:n]
        return raw.decode("utf-8", errors="replace")

    def list_header(self, tag: int) -> int:
        got = self.int(4)
        n = self.int(self.count)
        if got == 0 and n == 0:
            return 0
        if got != tag:
            raise NC3FormatError(f"{self.path}: bad NetCDF header tag {got:#x} (expected {tag:#x})")
        return n

    def attrs(self) -> dict:
        out = {}
        for _ in range(self.list_header(_NC_ATTRIBUTE)):
            name = self.name()
            code = self.int(4)
            dtype = _TYPES.get(code)
            if dtype is None:
                raise NC3FormatError(f"{self.path}: attribute {name!r} has unknown type {code}")
            n = self.int(self.count)
            raw = self.need(_pad4(n * dtype.itemsize))[: n * dtype.itemsize]
            if dtype.kind == "S":
                out[name] = raw.rstrip(b"\x00").decode("utf-8", errors="replace")
            else:
                out[name] = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
        return out


class NC3File:
    """A NetCDF 3 file opened for chunked reads of its variables.

    Args:
        path: the file (CDF-1, CDF-2 or CDF-5).

    Example:
        >>> with NC3File(path) as nc:  # doctest: +SKIP
        ...     block = nc.read_rows(["t", "p"], 0, 1000)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._f = open(self.path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        try:
            self._parse()
        except BaseException:
            self._f.close()
            raise

    def _parse(self):
        size = os.fstat(self._f.fileno()).st_size
        head = self._f.read(min(size, 1 << 20))
        if len(head) < 4 or head[:3] != b"CDF" or head[3] not in (1, 2, 5):
            raise NC3FormatError(f"{self.path}: not a NetCDF 3 file (bad signature)")
        version = head[3]
        while True:
            try:
                self._parse_header(head, version)
                break
            except _ShortHeader:
                if len(head) >= size:
                    raise
                self._f.seek(0)  # a header bigger than the first read: read it all
                head = self._f.read(min(size, len(head) * 8))
        self._check(size)

    def _parse_header(self, head: bytes, version: int):
        h = _Header(head, version, self.path)
        numrecs = h.int(h.count)
        dims = []
        for _ in range(h.list_header(_NC_DIMENSION)):
            name = h.name()
            dims.append((name, h.int(h.count)))
        self.attrs = h.attrs()
        self.variables: dict[str, NC3Variable] = {}
        for _ in range(h.list_header(_NC_VARIABLE)):
            name = h.name()
            ndims = h.int(h.count)
            ids = [h.int(h.count) for _ in range(ndims)]
            if any(i >= len(dims) for i in ids):
                raise NC3FormatError(f"{self.path}: variable {name!r} has a bad dimension id")
            attrs = h.attrs()
            code = h.int(4)
            dtype = _TYPES.get(code)
            if dtype is None:
                raise NC3FormatError(f"{self.path}: variable {name!r} has unknown type {code}")
            h.int(h.count)  # vsize: recomputed below, it saturates for huge variables
            begin = h.int(h.offset)
            is_record = bool(ids) and dims[ids[0]][1] == 0
            shape = tuple(dims[i][1] for i in ids)
            self.variables[name] = NC3Variable(
                name=name,
                dims=tuple(dims[i][0] for i in ids),
                shape=shape,
                dtype=dtype,
                attrs=attrs,
                begin=begin,
                is_record=is_record,
            )
        self._numrecs = numrecs
        self._header_end = h.pos

    def _slab(self, var: NC3Variable) -> int:
        """Bytes of one record (record variables) or of the whole variable."""
        inner = var.shape[1:] if var.is_record else var.shape
        return int(np.prod(inner, dtype=np.int64)) * var.dtype.itemsize

    def _check(self, size: int):
        rec = [v for v in self.variables.values() if v.is_record]
        # Each record variable's slab is padded to 4 bytes, except when it is the only one.
        if len(rec) == 1:
            self.recsize = self._slab(rec[0])
        else:
            self.recsize = sum(_pad4(self._slab(v)) for v in rec)
        if self._numrecs == _STREAMING:
            start = min((v.begin for v in rec), default=size)
            self._numrecs = (size - start) // self.recsize if self.recsize else 0
        n = self._numrecs
        for var in self.variables.values():
            if var.is_record:
                var.shape = (n, *var.shape[1:])
                end = var.begin + (n - 1) * self.recsize + self._slab(var) if n else var.begin
            else:
                end = var.begin + self._slab(var)
            if var.begin < self._header_end or end > size:
                raise NC3FormatError(
                    f"{self.path}: truncated or corrupt: variable {var.name!r} needs bytes "
                    f"{var.begin}..{end}, the file has {size}"
                )

    def read_rows(self, names, start: int, stop: int) -> list[np.ndarray]:
        """Rows ``start:stop`` along the first axis of each named variable (native byte order).

        Record variables are read in one pass over the records they share.
        """
        out = {}
        rec = [self.variables[n] for n in names if self.variables[n].is_record]
        if rec and stop > start:
            first = min(v.begin for v in rec)
            last = max(v.begin + self._slab(v) for v in rec)
            nbytes = (stop - start - 1) * self.recsize + (last - first)
            self._f.seek(first + start * self.recsize)
            buf = self._f.read(nbytes)
            if len(buf) != nbytes:
                raise NC3FormatError(f"{self.path}: truncated record data")
            for v in rec:
                inner = v.shape[1:]
                strides = (self.recsize, *np.empty(inner, v.dtype).strides)
                view = np.ndarray(
                    (stop - start, *inner), v.dtype, buf, offset=v.begin - first, strides=strides
                )
                out[v.name] = view.astype(v.dtype.newbyteorder("="))
        for name in names:
            v = self.variables[name]
            if name in out:
                continue
            if v.is_record:  # an empty selection
                out[name] = np.empty((0, *v.shape[1:]), v.dtype.newbyteorder("="))
                continue
            row = int(np.prod(v.shape[1:], dtype=np.int64)) * v.dtype.itemsize
            n = max(0, min(stop, v.shape[0] if v.shape else 1) - start)
            self._f.seek(v.begin + start * row)
            buf = self._f.read(n * row)
            if len(buf) != n * row:
                raise NC3FormatError(f"{self.path}: truncated data of {name!r}")
            arr = np.frombuffer(buf, dtype=v.dtype).reshape((n, *v.shape[1:]))
            out[name] = arr.astype(v.dtype.newbyteorder("="))
        return [out[n] for n in names]

    def close(self):
        """Close the file."""
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
