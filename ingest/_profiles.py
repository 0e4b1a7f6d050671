"""Domain profiles (TOML) and the variables a crawl asks for (``--var NAME[:UNIT]``)."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from importlib import resources

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from ._units import UnitError, check_unit, conversion

__all__ = [
    "Profile",
    "ProfileError",
    "ProfileVariable",
    "VarSpec",
    "available_profiles",
    "load_profile",
    "parse_var",
    "resolve_vars",
]


class ProfileError(ValueError):
    """A profile that cannot be found or read, or a variable it describes badly."""


@dataclasses.dataclass(frozen=True)
class ProfileVariable:
    """One variable of a profile: its aliases, target unit and plausible physical range."""

    name: str
    unit: str | None = None
    aliases: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    bounds: tuple[float, float] | None = None
    source_units: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Profile:
    """A domain profile: named variables with aliases, units, ranges and map bounds."""

    name: str
    description: str
    variables: tuple[ProfileVariable, ...]
    path: str

    def find(self, name: str) -> ProfileVariable | None:
        """The variable whose name or one of whose aliases is ``name`` (case-insensitive)."""
        key = name.lower()
        for var in self.variables:
            if key == var.name.lower() or key in (a.lower() for a in var.aliases):
                return var
        return None


@dataclasses.dataclass(frozen=True)
class VarSpec:
    """A variable resolved for a crawl: the names to look for, units, range and bounds.

    ``candidates`` are leaf names in order of preference, as written (a file's name is matched
    exactly first, then case-insensitively when only one matches that way); ``unit`` is the unit of
    the map axis (None: values as the files have them); ``range`` drops implausible values;
    ``source_units`` maps a lower-case leaf name to the unit its files use when they say none.
    """

    name: str
    candidates: tuple[str, ...]
    unit: str | None = None
    range: tuple[float, float] | None = None
    bounds: tuple[float, float] | None = None
    source_units: tuple[tuple[str, str], ...] = ()


def _pair(value, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ProfileError(f"{where}: expected [lo, hi], got {value!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ProfileError(f"{where}: expected finite lo < hi, got {value!r}")
    return lo, hi


def available_profiles() -> list[str]:
    """Names of the profiles shipped with ingest (``ingest/profiles/*.toml``).

    Returns:
        Sorted profile names, e.g. ``["casting", "grid", "wind"]``.

    Example:
        >>> "wind" in available_profiles()
        True
    """
    folder = resources.files("ingest") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(profile: str | os.PathLike) -> Profile:
    """Load a shipped profile by name (``"grid"``) or a user's TOML file by path.

    The file holds ``name``, ``description`` and a ``[variables.NAME]`` table per variable
    with ``unit``, ``aliases``, ``range = [lo, hi]`` (plausible physical values), optional
    ``bounds = [lo, hi]`` (map window, in ``unit``) and ``source_units = {COLUMN = UNIT}``.

    Args:
        profile: a shipped profile name or the path of a TOML file.

    Returns:
        The parsed :class:`Profile`.

    Raises:
        ProfileError: unknown name, unreadable file or a malformed entry (naming the file).

    Example:
        >>> load_profile("grid").find("freq").unit
        'Hz'
    """
    text_path = os.fspath(profile)
    if os.path.sep in text_path or text_path.endswith(".toml") or os.path.exists(text_path):
        path = text_path
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ProfileError(f"profile {path}: cannot read: {err}") from err
    else:
        names = available_profiles()
        if text_path not in names:
            raise ProfileError(f"unknown profile {text_path!r}; shipped profiles: {names}")
        res = resources.files("ingest") / "profiles" / f"{text_path}.toml"
        path = str(res)
        data = tomllib.loads(res.read_text(encoding="utf-8"))
    variables = []
    table = data.get("variables", {})
    if not isinstance(table, dict) or not table:
        raise ProfileError(f"profile {path}: no [variables.NAME] tables")
    for name, spec in table.items():
        where = f"profile {path}: variables.{name}"
        if not isinstance(spec, dict):
            raise ProfileError(f"{where}: expected a table")
        unknown = set(spec) - {"unit", "aliases", "range", "bounds", "source_units"}
        if unknown:
            raise ProfileError(f"{where}: unknown keys {sorted(unknown)}")
        unit = spec.get("unit")
        if unit is not None:
            try:
                conversion(unit, unit)
            except UnitError as err:
                raise ProfileError(f"{where}: {err}") from err
        aliases = spec.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ProfileError(f"{where}: aliases must be a list of strings")
        src = spec.get("source_units", {})
        if not isinstance(src, dict):
            raise ProfileError(f"{where}: source_units must be a table COLUMN = UNIT")
        variables.append(
            ProfileVariable(
                name=name,
                unit=unit,
                aliases=tuple(aliases),
                range=_pair(spec.get("range"), f"{where}.range"),
                bounds=_pair(spec.get("bounds"), f"{where}.bounds"),
                source_units=tuple((k.lower(), str(v)) for k, v in src.items()),
            )
        )
    return Profile(
        name=str(data.get("name", os.path.basename(path)[:-5])),
        description=str(data.get("description", "")),
        variables=tuple(variables),
        path=path,
    )


def parse_var(text: str) -> tuple[str, str | None]:
    """Split ``"NAME[:UNIT]"`` into the name and the unit (None when absent).

    Example:
        >>> parse_var("temperature:K")
        ('temperature', 'K')
    """
    name, sep, unit = text.partition(":")
    name, unit = name.strip(), unit.strip()
    if not name:
        raise ValueError(f"--var {text!r}: empty variable name (expected NAME[:UNIT])")
    if sep and not unit:
        raise ValueError(f"--var {text!r}: empty unit after ':' (expected NAME[:UNIT])")
    return name, (unit or None)


def resolve_vars(variables, profile: Profile | str | os.PathLike | None = None) -> list[VarSpec]:
    """Resolve ``NAME[:UNIT]`` strings (or ``(name, unit)`` pairs) against a profile.

    A name that is a profile variable or one of its aliases takes the profile's aliases,
    unit (unless a unit is given), range, bounds and source units.

    Args:
        variables: a sequence of ``"NAME[:UNIT]"`` strings or ``(name, unit)`` pairs.
        profile: None, a :class:`Profile`, a shipped profile name or a TOML path.

    Returns:
        One :class:`VarSpec` per variable, in order.

    Raises:
        ValueError: no variables, a duplicate name or an unknown unit (naming it).

    Example:
        >>> resolve_vars(["ws"], "wind")[0].unit
        'm/s'
    """
    if isinstance(variables, str):
        variables = [variables]
    if not variables:
        raise ValueError("no variables asked for: pass at least one --var NAME[:UNIT]")
    if profile is not None and not isinstance(profile, Profile):
        profile = load_profile(profile)
    specs = []
    for item in variables:
        name, unit = parse_var(item) if isinstance(item, str) else (item[0], item[1])
        if unit is not None:
            try:
                check_unit(unit)
            except UnitError as err:
                raise ValueError(f"--var {name}:{unit}: {err}") from err
        pv = profile.find(name) if profile is not None else None
        cands = [name]
        if pv is not None:
            for alias in (pv.name, *pv.aliases):
                if alias not in cands:
                    cands.append(alias)
            # Profile ranges and bounds are in the profile's unit: convert them to the asked one.
            rng, bnd = pv.range, pv.bounds
            if unit is not None and pv.unit is not None:
                a, b = conversion(pv.unit, unit)
                rng = None if rng is None else tuple(sorted((a * rng[0] + b, a * rng[1] + b)))
                bnd = None if bnd is None else tuple(sorted((a * bnd[0] + b, a * bnd[1] + b)))
            spec = VarSpec(
                name=name,
                candidates=tuple(cands),
                unit=unit if unit is not None else pv.unit,
                range=rng,
                bounds=bnd,
                source_units=pv.source_units,
            )
        else:
            spec = VarSpec(name=name, candidates=tuple(cands), unit=unit)
        specs.append(spec)
    seen = [s.name.lower() for s in specs]
    dups = sorted({n for n in seen if seen.count(n) > 1})
    if dups:
        raise ValueError(f"variable asked for twice: {dups}")
    return specs
