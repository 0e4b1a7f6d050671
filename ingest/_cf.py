"""CF decoding of raw variable values: fill values, valid range, packing, unsigned integers."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["DEFAULT_FILLS", "Decoder", "attr_number", "attr_text", "find_attr", "find_units"]

# NetCDF's default fill values (netcdf.h NC_FILL_*), by raw dtype: what a never-written value of
# a variable without ``_FillValue`` holds. netCDF4-python masks them; so do we (see Decoder).
DEFAULT_FILLS = {
    "i1": -127,  # NC_FILL_BYTE
    "u1": 255,  # NC_FILL_UBYTE
    "i2": -32767,  # NC_FILL_SHORT
    "u2": 65535,  # NC_FILL_USHORT
    "i4": -2147483647,  # NC_FILL_INT
    "u4": 4294967295,  # NC_FILL_UINT
    "i8": -9223372036854775806,  # NC_FILL_INT64
    "u8": 18446744073709551614,  # NC_FILL_UINT64
    "f4": 9.9692099683868690e36,  # NC_FILL_FLOAT
    "f8": 9.9692099683868690e36,  # NC_FILL_DOUBLE
}


def attr_text(value) -> str | None:
    """An attribute as text: bytes, numpy byte strings and 1-element arrays decoded; else None."""
    if isinstance(value, np.ndarray):
        if value.size != 1 or value.dtype.kind not in "SUO":
            return None
        value = value.reshape(()).item()
    if isinstance(value, np.bytes_ | bytes):
        raw = bytes(value).rstrip(b"\x00")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    if isinstance(value, str | np.str_):
        return str(value).rstrip("\x00")
    return None


def attr_number(value) -> np.ndarray | None:
    """An attribute as a 1-d numeric array (None when it is text or empty)."""
    if value is None or attr_text(value) is not None:
        return None
    arr = np.asarray(value).ravel()
    if arr.size == 0 or arr.dtype.kind not in "biuf":
        return None
    return arr


def find_attr(attrs, *names):
    """The first attribute among ``names`` present in ``attrs``, or None.

    Names are matched exactly: CF attribute names are case-sensitive (``VALID_RANGE`` is not
    ``valid_range``, netCDF-C and netCDF4-python ignore it too).
    """
    for name in names:
        if name in attrs:
            return attrs[name]
    return None


def find_units(attrs) -> str | None:
    """The unit text of a variable: its ``units`` attribute, else one spelled otherwise.

    ``units`` (CF) first; else a single attribute named ``unit``/``units`` in any case
    (``Units``, ``UNIT``: common in HDF5 files of other origins). A unit is not a decoding
    rule: whatever is found is parsed and checked against the asked unit, never guessed.
    """
    text = attr_text(find_attr(attrs, "units"))
    if text is not None:
        return text
    others = [k for k in attrs.keys() if str(k).lower() in ("units", "unit")]
    if len(others) == 1:
        return attr_text(attrs[others[0]])
    return None


def _is_true(value) -> bool:
    text = attr_text(value)
    if text is not None:
        return text.strip().lower() in ("true", "1", "yes")
    num = attr_number(value)
    return bool(num is not None and num[0] != 0)


@dataclasses.dataclass(frozen=True)
class Decoder:
    """CF decoding of one variable, computed once from its attributes.

    In order (as netCDF-C and netCDF4-python do it): reinterpret signed integers as unsigned
    when ``_Unsigned = "true"``; mask raw values equal to ``_FillValue`` or any
    ``missing_value``, and NaN; without ``_FillValue``, mask NetCDF's default fill value of the
    type (``default_fill``, see :meth:`from_attrs`); mask raw values outside ``valid_range`` /
    ``valid_min`` / ``valid_max`` (compared in packed units); unpack ``x = raw * scale_factor
    + add_offset``; then apply the unit conversion ``y = a * x + b``. Masked values become NaN.
    """

    unsigned: bool = False
    fills: tuple[float, ...] = ()
    valid_min: float | None = None
    valid_max: float | None = None
    scale: float = 1.0
    offset: float = 0.0
    default_fill: int | float | None = None

    @classmethod
    def from_attrs(cls, attrs, dtype: np.dtype, default_fill: str = "none") -> Decoder:
        """Build the decoder of a variable with raw ``dtype`` from its attribute mapping.

        ``default_fill`` says when NetCDF's default fill value of the type (``DEFAULT_FILLS``)
        masks values of a variable without ``_FillValue``, as netCDF4-python decides it:
        ``"all"`` (NetCDF 3, and NetCDF 4 variables in fill mode: an HDF5 fill value set),
        ``"not-bytes"`` (other HDF5 datasets: bytes have no default fill there) or ``"none"``.
        A variable with ``_Unsigned = "true"`` never gets one (netCDF4-python compares the
        signed default with the unsigned values: never equal).
        """
        dtype = np.dtype(dtype)
        unsigned = dtype.kind == "i" and _is_true(find_attr(attrs, "_Unsigned"))
        raw_type = np.dtype(f"u{dtype.itemsize}") if unsigned else dtype

        def in_raw(arr):
            # Attributes of an _Unsigned variable are stored signed: reinterpret them too.
            if unsigned and arr.dtype.kind == "i":
                arr = arr.astype(dtype).view(raw_type)
            return arr.astype(np.float64)

        fills = []
        for name in ("_FillValue", "missing_value"):
            num = attr_number(find_attr(attrs, name))
            if num is not None:
                fills.extend(float(v) for v in in_raw(num) if not np.isnan(v))
        dflt = None
        if "_FillValue" not in attrs and not unsigned and default_fill != "none":
            code = f"{dtype.kind}{dtype.itemsize}"
            if code in DEFAULT_FILLS and (default_fill == "all" or dtype.itemsize > 1):
                dflt = DEFAULT_FILLS[code]
        vmin = vmax = None
        vr = attr_number(find_attr(attrs, "valid_range"))
        if vr is not None and vr.size >= 2:
            vmin, vmax = (float(v) for v in in_raw(vr[:2]))
        num = attr_number(find_attr(attrs, "valid_min"))
        if num is not None:
            vmin = float(in_raw(num)[0])
        num = attr_number(find_attr(attrs, "valid_max"))
        if num is not None:
            vmax = float(in_raw(num)[0])
        scale = attr_number(find_attr(attrs, "scale_factor"))
        offset = attr_number(find_attr(attrs, "add_offset"))
        return cls(
            unsigned=unsigned,
            fills=tuple(fills),
            valid_min=vmin,
            valid_max=vmax,
            scale=1.0 if scale is None else float(scale[0]),
            offset=0.0 if offset is None else float(offset[0]),
            default_fill=dflt,
        )

    def _default_mask(self, raw: np.ndarray):
        """Where ``raw`` holds the default fill value, or None when nowhere (the usual case)."""
        fill = self.default_fill
        if raw.size == 0:
            return None
        # One reduction (no temporary array) rules the fill out in most blocks: the float fill
        # is near the top of the float range, the signed ones next to the bottom of theirs,
        # the unsigned ones at the top.
        if raw.dtype.kind == "f":
            top = raw.max()
            if top < fill:  # False for NaN: then compared below
                return None
        elif fill < 0:
            if raw.min() > fill:
                return None
        elif raw.max() < fill:
            return None
        hit = raw == raw.dtype.type(fill)
        return hit if hit.any() else None

    def __call__(self, raw: np.ndarray, a: float = 1.0, b: float = 0.0) -> np.ndarray:
        """Decode raw values to float64 in the target unit: ``a * (raw * scale + offset) + b``."""
        raw = np.asarray(raw)
        if self.unsigned:
            raw = raw.view(np.dtype(f"u{raw.dtype.itemsize}"))
        mask = None
        for fill in self.fills:
            hit = raw == fill
            mask = hit if mask is None else (mask | hit)
        if self.default_fill is not None:
            hit = self._default_mask(raw)
            if hit is not None:
                mask = hit if mask is None else (mask | hit)
        if self.valid_min is not None:
            low = raw < self.valid_min
            mask = low if mask is None else (mask | low)
        if self.valid_max is not None:
            high = raw > self.valid_max
            mask = high if mask is None else (mask | high)
        # One fused affine step: unpacking then unit conversion.
        slope = a * self.scale
        shift = a * self.offset + b
        if mask is None and slope == 1.0 and shift == 0.0 and raw.dtype.kind == "f":
            return raw  # nothing to decode: float32 stays float32 (exact in float64 compares)
        out = raw.astype(np.float64)
        if slope != 1.0:
            out *= slope
        if shift != 0.0:
            out += shift
        if mask is not None:
            out[mask] = np.nan
        return out
