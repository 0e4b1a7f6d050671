"""Readers: recognise a file by its first bytes, find the asked variables, stream decoded rows.

Every reader yields blocks of aligned columns: a list of float64 arrays (one per asked
variable, NaN where a value is missing) plus a count of junk lines (text files only).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import io
import os
import re
from collections.abc import Iterator

import numpy as np

from ._cf import Decoder, attr_text, find_units
from ._compiled import optional_kernel
from ._netcdf3 import NC3File, NC3FormatError

__all__ = ["SkipFile", "Column", "Table", "detect", "open_tables"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_EXTS = (".h5", ".hdf5", ".he5", ".hdf", ".nc", ".nc4", ".cdf", ".netcdf")
# Target size of one block read from a file: big enough to amortise the per-call costs of
# h5py and NumPy, small enough that a worker holds a few tens of MB at a time.
BLOCK_BYTES = 8 << 20
# The longest text line kept (a header, or a row): a longer one is skipped as junk, so a file
# without line ends never fills the memory.
MAX_LINE_BYTES = 32 << 20


class SkipFile(Exception):
    """A file the crawl skips, with the reason shown in the report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def detect(path: str) -> str:
    """The kind of a file from its first bytes: ``"hdf5"``, ``"netcdf3"``, ``"text"``, ``"text-gzip"``.

    HDF5 (and so NetCDF 4) starts with ``\\x89HDF\\r\\n\\x1a\\n`` at byte 0, 512, 1024, ...
    (after a user block); NetCDF 3 with ``CDF`` and version 1, 2 or 5; text has no NUL byte in
    its first 8 KiB (gzip-compressed text: none in its first 8 KiB once decompressed).

    Raises:
        SkipFile: empty, unreadable, or an unrecognised binary format (naming why).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
            if not head:
                raise SkipFile("empty file")
            if head[:3] == b"CDF" and len(head) > 3 and head[3] in (1, 2, 5):
                return "netcdf3"
            offset = 0
            size = os.fstat(f.fileno()).st_size
            while offset + 8 <= size and offset <= 1 << 20:
                if offset == 0:
                    sig = head[:8]
                else:
                    f.seek(offset)
                    sig = f.read(8)
                if sig == HDF5_SIGNATURE:
                    return "hdf5"
                offset = 512 if offset == 0 else offset * 2
    except PermissionError as err:
        raise SkipFile("permission denied") from err
    except IsADirectoryError as err:
        raise SkipFile("not a regular file") from err
    except OSError as err:
        raise SkipFile(f"unreadable: {err.strerror or err}") from err
    if path.lower().endswith(_HDF5_EXTS):
        raise SkipFile("corrupt: no HDF5 or NetCDF signature")
    if head[:2] == b"\x1f\x8b":  # gzip: rotated logs (.log.gz, .csv.gz) are text inside
        try:
            with gzip.open(path, "rb") as g:
                inner = g.read(8192)
        except (OSError, EOFError) as err:
            raise SkipFile(f"corrupt: gzip ({err})") from err
        if inner and b"\x00" not in inner:
            return "text-gzip"
        raise SkipFile("unrecognised binary format (gzip of non-text)")
    if b"\x00" in head:
        raise SkipFile("unrecognised binary format")
    return "text"


@dataclasses.dataclass
class Column:
    """One matched variable in a file: where it is, its unit and its CF decoder."""

    path: str
    leaf: str
    unit: str | None
    decoder: Decoder
    shape: tuple[int, ...]
    field: str | None = None  # for a field of an HDF5 compound dataset


@dataclasses.dataclass
class Table:
    """Aligned columns of one file (one per asked variable) and how to read them in blocks."""

    label: str
    columns: list[Column]
    n_rows: int
    read: object  # callable(start, stop) -> list of raw arrays, for binary formats
    row_bytes: int

    def blocks(self, convert) -> Iterator[tuple[list[np.ndarray], int]]:
        """Decoded blocks: ``convert[i] = (a, b)`` is variable i's unit conversion."""
        step = max(1, BLOCK_BYTES // max(1, self.row_bytes))
        for start in range(0, self.n_rows, step):
            raws = self.read(start, min(self.n_rows, start + step))
            yield (
                [
                    col.decoder(raw, *ab).ravel()
                    for col, raw, ab in zip(self.columns, raws, convert, strict=True)
                ],
                0,
            )


class _Ambiguous(SkipFile):
    """Two names match one asked variable the same way."""


def _pick(spec, names: dict, what: str = "variables", unusable=()):
    """The entry of ``names`` (name -> entry) that ``spec`` asks for, or None.

    Each candidate in order (the asked name, then a profile's aliases): an exact match first;
    else a case-insensitive match when exactly one name matches that way. Two names that match
    one candidate case-insensitively (``Power`` and ``POWER``) are an error naming both. A
    candidate that is exactly the name of something unusable (in ``unusable``: a netCDF
    dimension ``D1`` beside a variable ``d1``) stops the search: it is reported, not replaced.
    """
    lower = None
    for cand in spec.candidates:
        if cand in names:
            return names[cand]
        if cand in unusable:
            return None
        if lower is None:
            lower = {}
            for n in names:
                lower.setdefault(n.lower(), []).append(n)
        hits = lower.get(cand.lower(), [])
        if len(hits) == 1:
            return names[hits[0]]
        if len(hits) > 1:
            both = " and ".join(repr(h) for h in hits[:4])
            raise _Ambiguous(
                f"ambiguous: {spec.name} matches {what} {both} (they differ only in case; "
                "ask for one by its exact name)"
            )
    return None


def _choose(specs, entries: dict, what: str = "variables", unusable=()):
    """Match each spec to one entry (dict name -> entry), or None when one is missing."""
    out = []
    for spec in specs:
        hit = _pick(spec, entries, what, unusable)
        if hit is None:
            return None
        out.append(hit)
    return out


def _check_shapes(columns: list[Column], label: str):
    shapes = {c.shape for c in columns}
    if len(shapes) > 1:
        desc = ", ".join(f"{c.leaf} {c.shape}" for c in columns)
        raise SkipFile(f"variables not aligned{label}: shapes {desc}")
    shape = columns[0].shape
    if len(shape) == 0:
        raise SkipFile(f"scalar variables{label}")


def _missing(specs, names, unusable: dict | None = None) -> str:
    """Why no table was found: the variables that exist but cannot be used, else the missing."""
    names = {n: n for n in names}
    unusable = unusable or {}
    for spec in specs:
        if unusable and _pick(spec, names, unusable=unusable) is None:
            hit = _pick(spec, unusable)
            if hit is not None:
                return f"{spec.name}: {hit}"
    miss = [s.name for s in specs if _pick(s, names, unusable=unusable) is None]
    return "no matching variables" + (f" (missing {', '.join(miss)})" if miss else "")


def _unusable_dtype(dt) -> str | None:
    """Why values of this dtype cannot be counted, or None when they can."""
    if dt.kind in "biuf" and dt.shape == ():
        return None
    if dt.kind == "c":
        return "complex numbers (not supported: count the real and imaginary parts apart)"
    if dt.kind in "SUO" or dt.kind == "T":
        return "text (strings), not numbers"
    return f"of type {dt} (not plain numbers)"


# ---------------------------------------------------------------------------------------- HDF5
# netCDF-C stores a dimension that has no coordinate variable as an empty HDF5 dimension scale
# whose NAME attribute starts with this text (nc4hdf.c), and a variable that has a dimension's
# name but is not its coordinate variable as "_nc4_non_coord_NAME".
_NC4_DIM_ONLY = "This is a netCDF dimension but not a netCDF variable"
_NC4_NON_COORD = "_nc4_non_coord_"

# HDF5 filters that are plugins (not built into libhdf5), by registered id
# (https://github.com/HDFGroup/hdf5_plugins/blob/master/docs/RegisteredFilterPlugins.md).
_FILTER_NAMES = {
    305: "LZO",
    307: "bzip2",
    32000: "LZF",
    32001: "Blosc",
    32004: "LZ4",
    32008: "bitshuffle",
    32013: "ZFP",
    32015: "Zstandard (zstd)",
    32017: "SZ",
    32018: "FCIDECOMP",
    32024: "SZ3",
    32026: "Blosc2",
}


def _nc4_dimension_only(obj) -> bool:
    """True for netCDF-4's placeholder of a dimension without a variable (no values)."""
    attrs = obj.attrs
    if "CLASS" not in attrs or "NAME" not in attrs:
        return False
    name = attr_text(attrs["NAME"])
    return bool(name) and name.startswith(_NC4_DIM_ONLY)


def _hdf5_check_data(ds, col: Column) -> None:
    """Refuse a dataset with no values, never written, or needing a missing filter plugin."""
    import h5py

    where = f"/{col.path}"
    if ds.size == 0:
        raise SkipFile(f"{col.leaf}: {where} is empty (shape {ds.shape}, no values)")
    dcpl = ds.id.get_create_plist()
    if (
        dcpl.get_layout() != h5py.h5d.VIRTUAL
        and dcpl.get_external_count() == 0
        and ds.id.get_storage_size() == 0
    ):
        raise SkipFile(
            f"no data: {col.leaf} ({where}) was created but never written "
            "(no storage allocated: it holds only its fill value)"
        )
    for i in range(dcpl.get_nfilters()):
        code, _flags, _values, name = dcpl.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = _FILTER_NAMES.get(code)
            if label is None:
                text = name.decode("utf-8", "replace").strip("\x00 ") if name else ""
                label = text or "an unknown"
            raise SkipFile(
                f"needs the {label} filter (HDF5 filter id {code}) to read {where}, and it is "
                "not installed: pip install hdf5plugin and import hdf5plugin before the crawl"
            )


def _hdf5_decoder(ds) -> Decoder:
    """The CF decoder of a dataset; NetCDF's default fill as netCDF4-python applies it."""
    import h5py

    # netCDF-C's fill mode is on for a dataset with a user-defined HDF5 fill value (what it
    # writes for every variable unless fill is turned off): then bytes get a default fill too.
    defined = ds.id.get_create_plist().fill_value_defined()
    mode = "all" if defined == h5py.h5d.FILL_VALUE_USER_DEFINED else "not-bytes"
    return Decoder.from_attrs(ds.attrs, ds.dtype, default_fill=mode)


def _hdf5_tables(f, specs) -> list[Table]:
    import h5py

    groups: dict[str, dict[str, Column]] = {}
    every: dict[str, list[Column]] = {}
    unusable: dict[str, str] = {}  # leaf -> why it cannot be counted (for the report)

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        parent, _, leaf = name.rpartition("/")
        if leaf.startswith(_NC4_NON_COORD):
            leaf = leaf[len(_NC4_NON_COORD) :]
        dt = obj.dtype
        if dt.names and obj.ndim > 0:  # compound dataset (a table): its numeric fields are columns
            for field in dt.names:
                sub = dt.fields[field][0]
                why = _unusable_dtype(sub)
                if why is not None:
                    unusable.setdefault(field, f"field {field!r} of /{name} is {why}")
                    continue
                col = Column(
                    path=name,
                    leaf=field,
                    unit=None,
                    decoder=Decoder(),
                    shape=obj.shape,
                    field=field,
                )
                groups.setdefault(name, {}).setdefault(field, col)
                every.setdefault(field, []).append(col)
            return
        why = "a scalar (one value, no rows)" if obj.ndim == 0 else _unusable_dtype(dt)
        if why is None and _nc4_dimension_only(obj):
            why = "a netCDF dimension without values (not a variable)"
        if why is not None:
            unusable.setdefault(leaf, f"/{name} is {why}")
            return
        col = Column(
            path=name,
            leaf=leaf,
            unit=find_units(obj.attrs),
            decoder=None,
            shape=obj.shape,
        )
        groups.setdefault(parent, {}).setdefault(leaf, col)
        every.setdefault(leaf, []).append(col)

    f.visititems(visit)
    chosen = []
    for group in sorted(groups):
        cols = _choose(specs, groups[group], unusable=unusable)
        if cols is not None:
            chosen.append((group, cols))
    if not chosen:
        # No group holds them all: take unique matches across the whole file.
        cols = []
        for spec in specs:
            hits = _pick(spec, every, unusable=unusable)
            if hits is None:
                raise SkipFile(_missing(specs, every, unusable))
            if len(hits) > 1:
                paths = ", ".join("/" + c.path for c in hits[:4])
                raise SkipFile(f"ambiguous: {spec.name} matches {paths}")
            cols.append(hits[0])
        chosen.append(("", cols))
    tables = []
    for group, cols in chosen:
        label = f" in /{group}" if group else ""
        _check_shapes(cols, label)
        dsets = [f[c.path] for c in cols]
        for ds, col in zip(dsets, cols, strict=True):
            _hdf5_check_data(ds, col)
            if col.decoder is None:
                col.decoder = _hdf5_decoder(ds)

        def read(start, stop, dsets=dsets, cols=cols):
            out = []
            for ds, col in zip(dsets, cols, strict=True):
                raw = ds[start:stop] if col.field is None else ds.fields(col.field)[start:stop]
                out.append(raw)
            return out

        shape = cols[0].shape
        per_row = int(np.prod(shape[1:], dtype=np.int64))
        row_bytes = sum(per_row * max(8, d.dtype.itemsize) for d in dsets)
        tables.append(Table(label, cols, shape[0], read, row_bytes))
    return tables


# ------------------------------------------------------------------------------------ NetCDF 3
def _nc3_tables(nc: NC3File, specs) -> list[Table]:
    entries, unusable = {}, {}
    for name, var in nc.variables.items():
        why = "a scalar (one value, no rows)" if not var.shape else _unusable_dtype(var.dtype)
        if why is None and 0 in var.shape:
            why = f"empty (shape {var.shape}, no values)"
        if why is None:
            entries[name] = var
        else:
            unusable[name] = f"{name} is {why}"
    hits = _choose(specs, entries, unusable=unusable)
    if hits is None:
        raise SkipFile(_missing(specs, entries, unusable))
    cols = [
        Column(
            path=v.name,
            leaf=v.name,
            unit=find_units(v.attrs),
            decoder=Decoder.from_attrs(v.attrs, v.dtype.newbyteorder("="), default_fill="all"),
            shape=v.shape,
        )
        for v in hits
    ]
    _check_shapes(cols, "")
    names = [v.name for v in hits]
    per_row = int(np.prod(cols[0].shape[1:], dtype=np.int64))
    return [
        Table("", cols, cols[0].shape[0], lambda a, b: nc.read_rows(names, a, b), 8 * per_row * 4)
    ]


# ----------------------------------------------------------------------------------- CSV/text
_UNIT_IN_NAME = re.compile(r"^(.*?)\s*[\[(]\s*([^\])]*?)\s*[\])]\s*$")
_MISSING_TOKENS = frozenset(["", "na", "n/a", "nan", "null", "none", "-", "--", "?", "#n/a"])
_DELIMS = (",", ";", "\t", "|")


def split_header_field(field: str) -> tuple[str, str | None]:
    """``"power [kW]"`` or ``"power (kW)"`` -> ``("power", "kW")``; else ``(field, None)``."""
    field = field.strip().strip('"').strip("'").strip()
    m = _UNIT_IN_NAME.match(field)
    if m and m.group(1):
        return m.group(1).strip(), (m.group(2).strip() or None)
    return field, None


class _TextTable:
    """A CSV or whitespace-separated log, streamed in blocks of lines (read as bytes)."""

    def __init__(self, path: str, specs, compressed: bool = False):
        self.path = path
        self._f = (gzip.open if compressed else open)(path, "rb")
        try:
            self._init(specs)
        except BaseException:
            self._f.close()
            raise

    def _init(self, specs):
        header = None
        while True:
            raw = self._f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            if len(raw) > MAX_LINE_BYTES:
                raise SkipFile(f"a header or preamble line longer than {MAX_LINE_BYTES} bytes")
            line = raw.decode("utf-8", errors="replace")
            if header is None:
                # A byte-order mark (Excel exports) is not part of the first column's name.
                line = line.lstrip("\ufeff")
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            header = line.rstrip("\r\n")
            break
        if header is None:
            raise SkipFile("no header line")
        if "\x00" in header:
            raise SkipFile("NUL bytes in the header line")
        counts = {d: header.count(d) for d in _DELIMS}
        best = max(_DELIMS, key=lambda d: counts[d])
        self.delim = best if counts[best] > 0 else None
        try:
            fields = (
                next(csv.reader([header], delimiter=self.delim)) if self.delim else header.split()
            )
        except csv.Error as err:
            raise SkipFile(f"unreadable header line ({err})") from err
        names, units = zip(*(split_header_field(f) for f in fields), strict=True)
        self.ncols = len(names)
        entries, columns = {}, {}
        for i, name in enumerate(names):
            entries.setdefault(name, (i, name, units[i]))
            columns.setdefault(name, []).append(i + 1)
        hits = _choose(specs, entries, "columns")
        if hits is None:
            raise SkipFile(_missing(specs, names))
        for _, name, _ in hits:
            if len(columns[name]) > 1:
                where = " and ".join(str(c) for c in columns[name][:4])
                raise SkipFile(f"ambiguous: two columns are named {name!r} (columns {where})")
        self.usecols = [h[0] for h in hits]
        self.columns = [
            Column(path=name, leaf=name, unit=unit, decoder=Decoder(), shape=(-1,))
            for _, name, unit in hits
        ]
        self.label = ""

    def blocks(self, convert) -> Iterator[tuple[list[np.ndarray], int]]:
        """Decoded blocks of rows and the junk lines met in each.

        A line longer than ``MAX_LINE_BYTES`` is skipped as one junk line (never held whole).
        """
        a = [np.float64(ab[0]) for ab in convert]
        b = [np.float64(ab[1]) for ab in convert]
        rest = b""
        skipping = False  # inside a line too long to keep: drop bytes up to its end
        while True:
            chunk = self._f.read(BLOCK_BYTES)
            if not chunk:
                break
            if skipping:
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue
                skipping, chunk = False, chunk[nl + 1 :]
                if not chunk:
                    continue
            if rest:
                chunk = rest + chunk
            cut = chunk.rfind(b"\n")
            if cut < 0:
                if len(chunk) > MAX_LINE_BYTES:
                    rest, skipping = b"", True
                    yield [np.empty(0) for _ in self.usecols], 1
                else:
                    rest = chunk
                continue
            if cut + 1 == len(chunk):  # the usual case for the last block: no copy
                rest, text = b"", chunk
            else:
                rest, text = chunk[cut + 1 :], chunk[: cut + 1]
            values, junk = self._parse(text)
            yield _convert(values, a, b), junk
        if skipping:
            return
        if rest.strip():
            values, junk = self._parse(rest + b"\n")
            yield _convert(values, a, b), junk

    def _parse(self, text: bytes) -> tuple[list[np.ndarray], int]:
        """Fast paths on a clean block; the exact line-by-line path when it is dirty.

        Clean: no quote, comment or blank line, and exactly ``ncols - 1`` delimiters per line
        (checked by counting, so a line with a missing or extra field is never misread). A
        clean block of plain decimals takes the compiled pass (:func:`_simple_parse`, with
        numba), any other clean block pandas' C parser; all give the same doubles.
        """
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        d = self.delim.encode() if self.delim is not None else None
        if d is not None and b'"' not in text and b"#" not in text:
            vals = _simple_parse(text, d[0], self.ncols, self.usecols)
            if vals is not None:
                return vals, 0
            # One vectorised pass finds line ends, delimiters and empty fields (two separators
            # in a row): bytes.count and 2-byte searches would scan the block five times.
            arr = np.frombuffer(text, dtype=np.uint8)
            is_n = arr == 10
            is_d = arr == d[0]
            lines = int(np.count_nonzero(is_n))
            delims = int(np.count_nonzero(is_d))
            sep = is_n | is_d
            adjacent = bool(sep[0]) or bool(np.any(sep[1:] & sep[:-1]))
            clean = delims == lines * (self.ncols - 1)
            if adjacent and clean:
                if b"\n\n" in text or text.startswith(b"\n"):
                    clean = False  # blank lines: the exact path skips them
                else:
                    # Empty fields are missing values: a token the parsers read as NaN (no
                    # delimiter or line end is added, so the counts above still hold).
                    text = text.replace(d + d, d + b"nan" + d).replace(d + d, d + b"nan" + d)
                    text = text.replace(b"\n" + d, b"\nnan" + d).replace(d + b"\n", d + b"nan\n")
                    if text.startswith(d):
                        text = b"nan" + text
            if clean:
                vals = _fast_parse(text, self.delim, self.usecols)
                if vals is not None and vals[0].shape[0] == lines:
                    return vals, 0
        return self._parse_slow(text.decode("utf-8", errors="replace"))

    def _parse_slow(self, text: str) -> tuple[list[np.ndarray], int]:
        """Line by line: each line on its own, so a stray quote spoils only its own line."""
        rows, junk = [], 0
        nan = float("nan")
        delim, ncols = self.delim, self.ncols
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if delim is None:
                fields = line.split()
            elif '"' not in line:
                fields = line.split(delim)  # what the csv module gives for an unquoted line
            else:
                try:
                    fields = next(csv.reader([line], delimiter=delim, strict=True))
                except (csv.Error, StopIteration):  # a stray quote, a field over the limit
                    junk += 1
                    continue
            if len(fields) != ncols:
                junk += 1
                continue
            row = []
            for i in self.usecols:
                token = fields[i].strip()
                if token.lower() in _MISSING_TOKENS:
                    row.append(nan)
                    continue
                try:
                    row.append(float(token))
                except ValueError:
                    row = None
                    break
            if row is None:
                junk += 1
            else:
                rows.append(row)
        if not rows:
            return [np.empty(0) for _ in self.usecols], junk
        vals = np.asarray(rows, dtype=np.float64)
        return [vals[:, i] for i in range(vals.shape[1])], junk

    def close(self):
        self._f.close()


# The C parser of pandas reads numeric CSV ~5x faster than np.loadtxt (~350 vs ~70 MB/s on one
# core here), with the same values (both correctly rounded): used when pandas is installed.
# None: not looked up yet; False: not installed.
_PANDAS = None


def _pandas():
    global _PANDAS
    if _PANDAS is None:
        try:
            import pandas
        except ImportError:
            pandas = False
        _PANDAS = pandas
    return _PANDAS


def _fast_parse(text: bytes, delim: str, usecols) -> list[np.ndarray] | None:
    """Parse a clean block (numbers, ``nan``, one delimiter) or return None when it is not.

    Returns one float64 array per entry of ``usecols`` (in that order): views of the frame's
    block (read-only ones under pandas' copy-on-write, which :func:`_convert` copies).
    """
    import warnings

    pd = _pandas()
    uniq = sorted(set(usecols))
    with warnings.catch_warnings():
        # An empty block makes loadtxt warn; any parser warning means "not clean" here.
        warnings.simplefilter("error")
        try:
            if pd:
                frame = pd.read_csv(
                    io.BytesIO(text),
                    header=None,
                    sep=delim,
                    usecols=uniq,
                    dtype=np.float64,
                    engine="c",
                    keep_default_na=False,
                    na_values=["nan"],
                )
                # One array per asked column, in the asked order, straight from the frame's
                # float64 block (no reordered copy of the frame, no row-major interleave).
                return _in_order({c: frame[c].to_numpy(dtype=np.float64) for c in uniq}, usecols)
            vals = np.loadtxt(
                io.StringIO(text.decode("utf-8")),
                delimiter=delim,
                usecols=usecols,
                dtype=np.float64,
                ndmin=2,
                comments=None,
            )
        except (ValueError, Warning):  # UnicodeDecodeError and pandas' ParserError included
            return None
    return [vals[:, i] for i in range(vals.shape[1])]


def _in_order(by_column: dict, usecols) -> list[np.ndarray]:
    """One array per entry of ``usecols``, a column asked twice copied (converted in place)."""
    out, seen = [], set()
    for c in usecols:
        out.append(by_column[c].copy() if c in seen else by_column[c])
        seen.add(c)
    return out


def _convert(values: list[np.ndarray], a, b) -> list[np.ndarray]:
    """The unit conversion ``y = x * a_i + b_i`` of each column (a parser's column is its own).

    In place where the parser gave a writable array of its own (never shared between two
    columns), into a new array where it gave a read-only view (pandas' copy-on-write frames).
    """
    out = []
    for x, ai, bi in zip(values, a, b, strict=True):
        if x.flags.writeable:
            x *= ai
        else:
            x = np.multiply(x, ai)
        x += bi
        out.append(x)
    return out


# The common case of a numeric log -- every line exactly ``ncols`` fields, every chosen field a
# plain decimal (``[+-]digits[.digits][(e|E)[+-]digits]``), ``nan`` or empty -- is parsed by one
# compiled pass over the bytes when numba is installed (~3x pandas' C parser here: no
# tokenising into strings, no pre-scan of the block, unused columns only skipped). A number
# is ``m * 10**k`` or ``m / 10**-k`` with the integer ``m <= 2**53`` and ``|k| <= 22``: ``m`` and
# ``10**|k|`` are exact doubles, so the one IEEE operation is correctly rounded -- the same
# double as Python's ``float`` (the exact path) and pandas' parser give (Clinger's fast path).
# Anything else (more digits, larger exponents, ``inf``, spaces, a short or long line) makes
# the pass give up on the block, which then takes the pandas path unchanged.
def _compile_simple():
    import numba

    pow10 = np.array([10.0**i for i in range(23)])  # exact doubles: 10**22 < 2**53 * 5**22

    def kernel(buf, delim, slots, out):
        """Rows parsed into ``out[slot, row]``, or -1 when the block is not simple."""
        n = buf.shape[0]
        ncols = slots.shape[0]
        nrows = out.shape[1]
        pos = 0
        row = 0
        while pos < n:
            if row >= nrows:
                return -1
            for j in range(ncols):
                end = 10 if j == ncols - 1 else delim
                slot = slots[j]
                if slot < 0:  # a column not asked for: skipped, whatever it holds
                    while pos < n and buf[pos] != delim and buf[pos] != 10:
                        pos += 1
                    if pos >= n or buf[pos] != end:
                        return -1
                    pos += 1
                    continue
                c = buf[pos]
                if c == end:  # an empty field: a missing value
                    out[slot, row] = np.nan
                    pos += 1
                    continue
                if c == 110 and pos + 3 < n and buf[pos + 1] == 97 and buf[pos + 2] == 110:
                    if buf[pos + 3] != end:  # "nan"
                        return -1
                    out[slot, row] = np.nan
                    pos += 4
                    continue
                neg = c == 45
                if c == 45 or c == 43:
                    pos += 1
                m = 0
                digits = 0
                k = 0
                while pos < n and 48 <= buf[pos] <= 57:
                    m = m * 10 + (buf[pos] - 48)
                    digits += 1
                    pos += 1
                    if digits > 17:
                        return -1
                if pos < n and buf[pos] == 46:  # "."
                    pos += 1
                    while pos < n and 48 <= buf[pos] <= 57:
                        m = m * 10 + (buf[pos] - 48)
                        digits += 1
                        k -= 1
                        pos += 1
                        if digits > 17:
                            return -1
                if digits == 0:
                    return -1
                if pos < n and (buf[pos] == 101 or buf[pos] == 69):  # "e", "E"
                    pos += 1
                    eneg = False
                    if pos < n and (buf[pos] == 45 or buf[pos] == 43):
                        eneg = buf[pos] == 45
                        pos += 1
                    e = 0
                    edigits = 0
                    while pos < n and 48 <= buf[pos] <= 57:
                        e = e * 10 + (buf[pos] - 48)
                        edigits += 1
                        pos += 1
                        if edigits > 4:
                            return -1
                    if edigits == 0:
                        return -1
                    k += -e if eneg else e
                if pos >= n or buf[pos] != end:
                    return -1
                pos += 1
                if m > 9007199254740992 or k > 22 or k < -22:  # 2**53
                    return -1
                v = np.float64(m)
                if k >= 0:
                    v = v * pow10[k]
                else:
                    v = v / pow10[-k]
                out[slot, row] = -v if neg else v
            row += 1
        return row

    fn = numba.njit(
        numba.int64(
            numba.types.Array(numba.uint8, 1, "C", readonly=True),
            numba.int64,
            numba.types.Array(numba.int64, 1, "C"),
            numba.types.Array(numba.float64, 2, "C"),
        ),
        cache=True,
        nogil=True,
    )(kernel)
    return fn


_simple_kernel = optional_kernel(_compile_simple)


def _simple_parse(text: bytes, delim: int, ncols: int, usecols) -> list[np.ndarray] | None:
    """The columns of a simple block (see above), in ``usecols`` order; None when it is not."""
    kernel = _simple_kernel()
    if not kernel:
        return None
    buf = np.frombuffer(text, dtype=np.uint8)
    lines = int(np.count_nonzero(buf == 10))
    uniq = sorted(set(usecols))
    slots = np.full(ncols, -1, dtype=np.int64)
    slots[uniq] = np.arange(len(uniq))
    out = np.empty((len(uniq), lines), dtype=np.float64)
    if kernel(buf, delim, slots, out) != lines:
        return None
    return _in_order({c: out[k] for k, c in enumerate(uniq)}, usecols)


# ------------------------------------------------------------------------------------ opening
@contextlib.contextmanager
def open_tables(path: str, kind: str, specs):
    """Open a file of a detected kind and yield its tables of the asked variables.

    Raises:
        SkipFile: no matching variables, misaligned or ambiguous variables, a corrupt file.
    """
    if kind == "hdf5":
        import h5py

        try:
            f = h5py.File(path, "r")
        except PermissionError as err:
            raise SkipFile("permission denied") from err
        except OSError as err:
            raise SkipFile(f"corrupt: cannot open as HDF5 ({_short(err)})") from err
        try:
            yield _hdf5_tables(f, specs)
        finally:
            f.close()
    elif kind == "netcdf3":
        try:
            nc = NC3File(path)
        except PermissionError as err:
            raise SkipFile("permission denied") from err
        except NC3FormatError as err:
            raise SkipFile(f"corrupt: {_short(err).replace(path + ': ', '')}") from err
        try:
            yield _nc3_tables(nc, specs)
        finally:
            nc.close()
    elif kind in ("text", "text-gzip"):
        try:
            table = _TextTable(path, specs, compressed=kind == "text-gzip")
        except PermissionError as err:
            raise SkipFile("permission denied") from err
        try:
            yield [table]
        finally:
            table.close()
    else:  # pragma: no cover - detect() returns only the kinds above
        raise SkipFile(f"unsupported kind {kind!r}")


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]
