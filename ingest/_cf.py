"""CF decoding of raw variable values: fill values, valid range, packing, unsigned integers."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Decoder", "attr_number", "attr_text", "find_attr"]


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
    """The first attribute among ``names`` present in ``attrs`` (case-insensitive), or None."""
    lower = {str(k).lower(): k for k in attrs.keys()}
    for name in names:
        key = lower.get(name.lower())
        if key is not None:
            return attrs[key]
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
    ``missing_value``, and NaN; mask raw values outside ``valid_range`` / ``valid_min`` /
    ``valid_max`` (compared in packed units); unpack ``x = raw * scale_factor + add_offset``;
    then apply the unit conversion ``y = a * x + b``. Masked values become NaN.
    """

    unsigned: bool = False
    fills: tuple[float, ...] = ()
    valid_min: float | None = None
    valid_max: float | None = None
    scale: float = 1.0
    offset: float = 0.0

    @classmethod
    def from_attrs(cls, attrs, dtype: np.dtype) -> Decoder:
        """Build the decoder of a variable with raw ``dtype`` from its attribute mapping."""
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
        )

    def __call__(self, raw: np.ndarray, a: float = 1.0, b: float = 0.0) -> np.ndarray:
        """Decode raw values to float64 in the target unit: ``a * (raw * scale + offset) + b``."""
        raw = np.asarray(raw)
        if self.unsigned:
            raw = raw.view(np.dtype(f"u{raw.dtype.itemsize}"))
        mask = None
        for fill in self.fills:
            hit = raw == fill
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
