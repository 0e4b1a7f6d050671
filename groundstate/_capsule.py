"""Capsules: one self-contained, verifiable directory that grounds one domain.

A capsule holds the energy map (``map.npz``), the calibrated shield (``shield.npz``), an optional
surrogate (``surrogate/``, an orbax checkpoint), the domain profile (``profile.toml``), the
discovery table (``discovery.csv``), a card for people (``README.md``), pictures (``*.png``) and,
written last, ``capsule.json``: the manifest with the schema version, the versions, the
variables, the SHA-256 and size of every other file, the provenance and the shield's calibration.

Loading verifies every member against the manifest before anything is read: a partial capsule
(no ``capsule.json``), an edited member, a missing or an unknown file, a symbolic link or a newer
schema is refused with an error that names the file. Nothing is unpickled and nothing is
executed: maps and shields are plain ``.npz`` arrays read with ``allow_pickle=False``, the
surrogate is an orbax array checkpoint, the profile is TOML.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST",
    "SCHEMA",
    "Capsule",
    "CapsuleError",
    "load",
    "pack",
    "verify",
]

FORMAT = "groundstate.capsule"
SCHEMA = 1  # the manifest layout; a capsule with a larger number is refused (it is newer)
MANIFEST = "capsule.json"
_CHUNK = 1 << 20  # bytes hashed per read

# What each member is, by its path in the capsule (the manifest records it per file).
_KINDS = {
    "map.npz": "map",
    "shield.npz": "shield",
    "profile.toml": "profile",
    "README.md": "card",
    "discovery.csv": "discovery",
}


class CapsuleError(ValueError):
    """A capsule that cannot be trusted or read; the message names the file and the fault."""


def member_kind(rel: str) -> str:
    """The kind of a member from its relative path (``map``, ``surrogate``, ``picture`` ...)."""
    if rel in _KINDS:
        return _KINDS[rel]
    if rel.startswith("surrogate/"):
        return "surrogate"
    if rel.endswith(".png"):
        return "picture"
    return "data"


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _members(root: Path) -> list[str]:
    """Relative POSIX paths of every file under ``root`` (sorted); links and oddities refused."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                raise CapsuleError(f"{p}: a symbolic link inside a capsule is refused")
            if name in dirnames:
                continue
            if not stat.S_ISREG(st.st_mode):
                raise CapsuleError(f"{p}: not a regular file")
            out.append(p.relative_to(root).as_posix())
    return sorted(out)


def file_table(root: str | os.PathLike) -> dict[str, dict]:
    """The manifest's ``files`` entry for a staged capsule folder: kind, size, SHA-256 per file."""
    root = Path(root)
    table = {}
    for rel in _members(root):
        if rel == MANIFEST:
            continue
        p = root / rel
        table[rel] = {"kind": member_kind(rel), "size": p.stat().st_size, "sha256": sha256(p)}
    return table


def manifest_checksum(manifest: dict) -> str:
    """SHA-256 of the manifest's canonical JSON without its own ``checksum`` entry.

    It catches an edited ``capsule.json`` (a changed threshold or bound would otherwise go
    unnoticed: the manifest cannot list its own hash); like every hash here it detects
    corruption and accidents, not a forger who recomputes it (that needs a signature).
    """
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(root: str | os.PathLike, manifest: dict) -> dict:
    """Hash every member of ``root`` into ``manifest["files"]`` and write ``capsule.json`` last.

    The manifest is written to a temporary name, flushed to disk and renamed, so a capsule
    folder either has its complete manifest or none (and is then refused as partial).
    """
    root = Path(root)
    manifest = dict(manifest)
    manifest["format"] = FORMAT
    manifest["schema"] = SCHEMA
    manifest["files"] = file_table(root)
    manifest.pop("checksum", None)
    manifest["checksum"] = manifest_checksum(manifest)
    data = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
    tmp = root / (MANIFEST + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / MANIFEST)
    return manifest


def read_manifest(root: str | os.PathLike) -> dict:
    """Parse and check ``capsule.json`` (format, schema); no member is hashed here."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        if not root.exists():
            raise CapsuleError(f"{root}: no such capsule")
        raise CapsuleError(f"{root}: not a capsule folder (nor a .tar/.zip of one)")
    if not path.is_file():
        raise CapsuleError(
            f"{path}: missing: {root} is a partial capsule (capsule.json is written last)"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CapsuleError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise CapsuleError(f"{path}: format {fmt!r}, expected {FORMAT!r}")
    schema = meta.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise CapsuleError(f"{path}: schema must be a positive integer, got {schema!r}")
    if schema > SCHEMA:
        raise CapsuleError(
            f"{path}: schema {schema} is newer than this groundstate reads ({SCHEMA}): upgrade "
            f"groundstate to load it"
        )
    if meta.get("checksum") != manifest_checksum(meta):
        raise CapsuleError(f"{path}: edited: its checksum does not match its content")
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise CapsuleError(f"{path}: 'files' must list the capsule's members")
    for rel, entry in files.items():
        ok = (
            isinstance(rel, str)
            and rel
            and not rel.startswith("/")
            and ".." not in rel.split("/")
            and isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("size"), int)
        )
        if not ok:
            raise CapsuleError(f"{path}: malformed entry for member {rel!r}")
    return meta


def verify(path: str | os.PathLike) -> dict:
    """Check a capsule folder against its manifest; returns the manifest.

    Every listed member must exist with its recorded size and SHA-256, and no other file may
    be present (``capsule.json`` aside).

    Raises:
        CapsuleError: naming the first file that is missing, edited, unknown or malformed.
    """
    root = Path(path)
    meta = read_manifest(root)
    files = meta["files"]
    present = set(_members(root)) - {MANIFEST}
    for rel in sorted(present - set(files)):
        raise CapsuleError(f"{root / rel}: unknown file, not listed in {root / MANIFEST}")
    for rel in sorted(files):
        p = root / rel
        entry = files[rel]
        if rel not in present:
            raise CapsuleError(f"{p}: missing (listed in {root / MANIFEST})")
        size = p.stat().st_size
        if size != entry["size"]:
            raise CapsuleError(f"{p}: edited: {size} bytes, the manifest says {entry['size']}")
        if sha256(p) != entry["sha256"]:
            raise CapsuleError(f"{p}: edited: its SHA-256 is not the one in the manifest")
    return meta


# ---------------------------------------------------------------------------------- archives
def _archive_kind(path: str | os.PathLike) -> str | None:
    """``"zip"``, ``"tar"`` or None, by the name first (a tar of ``.npz`` members ends like a
    zip file), then by the content."""
    p = Path(path)
    if not p.is_file():
        return None
    name = p.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if tarfile.is_tarfile(p):
        return "tar"
    return "zip" if zipfile.is_zipfile(p) else None


def is_archive(path: str | os.PathLike) -> bool:
    """A ``.tar`` (optionally compressed) or ``.zip`` file."""
    return _archive_kind(path) is not None


def pack(capsule: str | os.PathLike, archive: str | os.PathLike) -> str:
    """Write a verified capsule folder as one ``.zip`` or ``.tar`` (``.tar.gz``) archive.

    Members are stored under the capsule's folder name; the archive is written to a temporary
    name and renamed. An existing ``archive`` is refused.
    """
    src = Path(capsule)
    verify(src)
    dst = Path(archive)
    if dst.exists():
        raise CapsuleError(f"{dst}: exists; remove it first or choose another name")
    name = dst.name.lower()
    top = src.resolve().name
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    members = _members(src)
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for rel in members:
                    z.write(src / rel, f"{top}/{rel}")
        elif name.endswith((".tar", ".tar.gz", ".tgz")):
            mode = "w:gz" if name.endswith(("gz", "tgz")) else "w"
            with tarfile.open(tmp, mode) as t:
                for rel in members:
                    t.add(src / rel, f"{top}/{rel}", recursive=False)
        else:
            raise CapsuleError(f"{dst}: expected a .zip, .tar or .tar.gz name")
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return str(dst)


def _safe_name(archive: Path, name: str) -> str:
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise CapsuleError(f"{archive}: member {name!r} points outside the archive")
    return "/".join(p for p in parts if p not in ("", "."))


def _extract(archive: Path, dest: Path) -> Path:
    """Unpack an archive into ``dest`` (regular files only); return the capsule folder in it."""
    if _archive_kind(archive) == "zip":
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                rel = _safe_name(archive, info.filename)
                if info.is_dir() or not rel:
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise CapsuleError(f"{archive}: member {info.filename!r} is a link")
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as f, open(out, "wb") as g:
                    shutil.copyfileobj(f, g)
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                rel = _safe_name(archive, m.name)
                if m.isdir() or not rel:
                    continue
                if not m.isfile():
                    raise CapsuleError(f"{archive}: member {m.name!r} is not a regular file")
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with t.extractfile(m) as f, open(out, "wb") as g:
                    shutil.copyfileobj(f, g)
    if (dest / MANIFEST).exists():
        return dest
    tops = [p for p in dest.iterdir()]
    if len(tops) == 1 and tops[0].is_dir():
        return tops[0]
    raise CapsuleError(f"{archive}: no {MANIFEST} at the top or in one top folder")


# ---------------------------------------------------------------------------------- the object
class Capsule:
    """A verified capsule in memory: ``map``, ``shield``, ``surrogate`` (or None), ``profile``,
    ``meta`` (the manifest) and ``path``.

    Build one with :func:`load` (or ``groundstate.onboard``); every array is in memory, so the
    files may move or go once it is loaded.
    """

    def __init__(self, path, meta, map, shield, surrogate, profile, profile_text):
        self.path = path
        self.meta = meta
        self.map = map
        self.shield = shield
        self.surrogate = surrogate
        self.profile = profile
        self.profile_text = profile_text

    @property
    def names(self) -> tuple[str, ...]:
        """The variables' names, in axis order."""
        return tuple(v["name"] for v in self.meta["variables"])

    @property
    def units(self) -> tuple[str, ...]:
        """The variables' units, in axis order."""
        return tuple(v["unit"] for v in self.meta["variables"])

    def decide(self, x: Any):
        """The shield's decisions for states ``x`` ``(n, d)`` (``energy.Decision``)."""
        return self.shield(x)

    def __repr__(self) -> str:
        axes = ", ".join(f"{n} [{u}]" for n, u in zip(self.names, self.units, strict=True))
        return (
            f"Capsule({self.meta.get('domain')!r}: {axes}; shield alpha "
            f"{self.meta['shield']['alpha']}, surrogate {self.surrogate is not None})"
        )


def _load_folder(root: Path, shown: str) -> Capsule:
    import energy
    import ingest

    meta = verify(root)
    files = meta["files"]
    for need in ("map.npz", "shield.npz"):
        if need not in files:
            raise CapsuleError(f"{shown}: the manifest lists no {need}")
    try:
        m = energy.load(str(root / "map.npz"))
        sh = energy.Shield.load(str(root / "shield.npz"))
    except ValueError as err:  # MapFileError: already names the file
        raise CapsuleError(str(err)) from err
    surrogate = None
    if any(rel.startswith("surrogate/") for rel in files):
        try:
            surrogate = energy.tnn.load(str(root / "surrogate"))
        except (ValueError, OSError) as err:
            raise CapsuleError(f"{root / 'surrogate'}: {err}") from err
    profile = profile_text = None
    if "profile.toml" in files:
        profile_text = (root / "profile.toml").read_text(encoding="utf-8")
        try:
            profile = ingest.load_profile(str(root / "profile.toml"))
        except ValueError as err:
            raise CapsuleError(f"{root / 'profile.toml'}: {err}") from err
    expected = [v.get("name") for v in meta.get("variables", [])]
    if list(m.names) != expected:
        raise CapsuleError(
            f"{root / 'map.npz'}: axes {list(m.names)} but the manifest says {expected}"
        )
    return Capsule(shown, meta, m, sh, surrogate, profile, profile_text)


def load(path: str | os.PathLike) -> Capsule:
    """Load a capsule (a folder, or a ``.zip``/``.tar`` of one) after verifying every member.

    Args:
        path: the capsule folder written by ``groundstate onboard``, or an archive of it
            (``groundstate capsule pack``).

    Returns:
        A :class:`Capsule` with ``map``, ``shield``, ``surrogate`` (or None), ``profile`` and
        ``meta``.

    Raises:
        CapsuleError: a partial capsule (no ``capsule.json``), a missing, edited or unknown
            file, a newer schema, a malformed member; the message names the file.

    Example:
        >>> c = groundstate.load("wind.capsule")  # doctest: +SKIP
        >>> c.shield(states).allow  # doctest: +SKIP
    """
    p = Path(path)
    if is_archive(p):
        with tempfile.TemporaryDirectory(prefix="groundstate-capsule-") as tmp:
            root = _extract(p, Path(tmp))
            try:
                return _load_folder(root, str(p))
            except CapsuleError as err:
                # Name the member inside the archive, not the temporary folder.
                raise CapsuleError(str(err).replace(str(root), f"{p}!")) from None
    return _load_folder(p, str(p))
