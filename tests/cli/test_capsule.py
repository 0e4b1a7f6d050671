"""Capsules: verified load, refusal of partial / edited / unknown / newer ones, copies, archives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import groundstate
from groundstate import _capsule, cli


def write_lake(folder: Path, n: int = 6000, seed: int = 0) -> Path:
    """A small lake: one CSV log with a time column and two correlated variables, plus junk."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2024-01-01T00:00:00")
    a = rng.normal(5.0, 1.0, n)
    b = 2.0 * a + rng.normal(0.0, 0.5, n)
    lines = ["time,a,b"]
    for i in range(n):
        t = t0 + np.timedelta64(600 * i, "s")
        lines.append(f"{t}Z,{a[i]:.5f},{b[i]:.5f}")
    (folder / "log.csv").write_text("\n".join(lines) + "\n")
    (folder / "notes.txt").write_text("operator notes, no variables here\n")
    return folder


SMALL = dict(bins=16, alpha=0.05, n_chains=16, workers=1, progress=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One onboarded capsule (with a small surrogate, so every member type is present)."""
    root = tmp_path_factory.mktemp("capsule")
    lake = write_lake(root / "lake")
    lines: list[str] = []
    c = groundstate.onboard(
        lake,
        ["a", "b"],
        output=root / "ab.capsule",
        surrogate={
            "steps": 20,
            "eval_every": 10,
            "members": 2,
            "width": 8,
            "depth": 1,
            "n_points": 512,
        },
        licence="CC0-1.0",
        say=lines.append,
        **SMALL,
    )
    return root, c, lines


def states(c, n=200, seed=1):
    rng = np.random.default_rng(seed)
    lo = np.array([b[0] for b in c.map.bounds])
    hi = np.array([b[1] for b in c.map.bounds])
    x = rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), (n, len(lo)))
    x[0, 0] = np.nan
    return x


def decisions(c, x):
    d = c.shield(x)
    return np.asarray(d.allow), np.asarray(d.energy), np.asarray(d.reason)


def test_onboard_writes_a_verified_capsule(built):
    root, c, lines = built
    out = root / "ab.capsule"
    assert [ln[:3] for ln in lines if ln[:2] in ("1/", "2/", "3/", "4/")] == [
        "1/4",
        "2/4",
        "3/4",
        "4/4",
    ]
    meta = groundstate.verify(out)
    assert meta["schema"] == _capsule.SCHEMA and meta["licence"] == "CC0-1.0"
    kinds = {e["kind"] for e in meta["files"].values()}
    assert {"map", "shield", "surrogate", "card", "discovery"} <= kinds
    assert [v["name"] for v in meta["variables"]] == ["a", "b"]
    assert meta["shield"]["alpha"] == 0.05 and meta["shield"]["n"] > 0
    held = meta["provenance"]["held_out"]
    assert held["by"] == "time" and held["calibration_rows"] > 0 and held["test_rows"] > 0
    lo, hi = held["test_block_rate_interval_95"]
    assert lo <= held["test_block_rate"] <= hi
    assert c.surrogate is not None and c.profile is None and c.meta == meta
    assert not (root / "ab.capsule.onboard").exists()  # the work folder is gone


def test_round_trip_is_exact(built):
    root, c, _ = built
    again = groundstate.load(root / "ab.capsule")
    np.testing.assert_array_equal(np.asarray(again.map.values), np.asarray(c.map.values))
    assert float(again.shield.threshold) == float(c.shield.threshold)
    np.testing.assert_array_equal(np.asarray(again.shield.scores), np.asarray(c.shield.scores))


def test_a_copy_elsewhere_decides_bit_for_bit(built, tmp_path):
    root, c, _ = built
    copy = tmp_path / "elsewhere" / "moved.capsule"
    shutil.copytree(root / "ab.capsule", copy)
    moved = groundstate.load(copy)
    x = states(c)
    for a, b in zip(decisions(c, x), decisions(moved, x), strict=True):
        np.testing.assert_array_equal(a, b)
    xs = np.asarray(x[1:5])
    np.testing.assert_array_equal(
        np.asarray(c.surrogate.energy(xs)), np.asarray(moved.surrogate.energy(xs))
    )


def _copy(built, tmp_path) -> Path:
    root, _, _ = built
    dst = tmp_path / "c.capsule"
    shutil.copytree(root / "ab.capsule", dst)
    return dst


def test_partial_capsule_is_refused(built, tmp_path):
    dst = _copy(built, tmp_path)
    (dst / "capsule.json").unlink()
    with pytest.raises(groundstate.CapsuleError, match=r"capsule\.json: missing.*partial"):
        groundstate.load(dst)


# One member of each type; the byte flipped sits in the middle of the file.
MEMBERS = [
    "map.npz",
    "shield.npz",
    "discovery.csv",
    "README.md",
    "surrogate/tnn.json",
    "capsule.json",
]


@pytest.mark.parametrize("member", MEMBERS)
def test_one_flipped_byte_in_any_member_is_refused(built, tmp_path, member):
    dst = _copy(built, tmp_path)
    path = dst / member
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(groundstate.CapsuleError, match=rf"{path.name}.*edited|{path.name}.*JSON"):
        groundstate.load(dst)
    assert cli.main(["capsule", "verify", str(dst)]) == 1


def test_every_surrogate_array_file_is_covered(built, tmp_path):
    dst = _copy(built, tmp_path)
    arrays = [p for p in (dst / "surrogate").rglob("*") if p.is_file() and p.name != "tnn.json"]
    assert arrays
    big = max(arrays, key=lambda p: p.stat().st_size)
    data = bytearray(big.read_bytes())
    data[-1] ^= 0x80
    big.write_bytes(bytes(data))
    with pytest.raises(groundstate.CapsuleError, match=f"{big.name}: edited"):
        groundstate.verify(dst)


def test_picture_member_is_covered(built, tmp_path):
    pytest.importorskip("matplotlib")
    dst = _copy(built, tmp_path)
    png = dst / "landscape.png"
    assert png.exists()
    data = bytearray(png.read_bytes())
    data[100] ^= 0xFF
    png.write_bytes(bytes(data))
    with pytest.raises(groundstate.CapsuleError, match="landscape.png: edited"):
        groundstate.verify(dst)


def test_unknown_and_missing_files_are_refused(built, tmp_path):
    dst = _copy(built, tmp_path)
    (dst / "extra.npz").write_bytes(b"not listed")
    with pytest.raises(groundstate.CapsuleError, match=r"extra\.npz: unknown file"):
        groundstate.load(dst)
    (dst / "extra.npz").unlink()
    (dst / "discovery.csv").unlink()
    with pytest.raises(groundstate.CapsuleError, match=r"discovery\.csv: missing"):
        groundstate.load(dst)


def test_a_link_inside_is_refused(built, tmp_path):
    dst = _copy(built, tmp_path)
    (dst / "README.md").unlink()
    (dst / "README.md").symlink_to(built[0] / "ab.capsule" / "README.md")
    with pytest.raises(groundstate.CapsuleError, match="symbolic link"):
        groundstate.verify(dst)


def test_newer_schema_is_refused(built, tmp_path):
    dst = _copy(built, tmp_path)
    meta = json.loads((dst / "capsule.json").read_text())
    meta["schema"] = _capsule.SCHEMA + 1
    meta["checksum"] = _capsule.manifest_checksum(meta)
    (dst / "capsule.json").write_text(json.dumps(meta))
    with pytest.raises(groundstate.CapsuleError, match=r"capsule\.json: schema 2 is newer"):
        groundstate.load(dst)


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz"])
def test_archives_load_and_decide_the_same(built, tmp_path, suffix):
    root, c, _ = built
    archive = tmp_path / f"ab{suffix}"
    assert cli.main(["capsule", "pack", str(root / "ab.capsule"), str(archive)]) == 0
    packed = groundstate.load(archive)
    x = states(c)
    for a, b in zip(decisions(c, x), decisions(packed, x), strict=True):
        np.testing.assert_array_equal(a, b)
    assert cli.main(["capsule", "verify", str(archive)]) == 0
    with pytest.raises(groundstate.CapsuleError, match="exists"):
        groundstate.pack(root / "ab.capsule", archive)


def test_edited_archive_is_refused(built, tmp_path):
    import zipfile

    root, _, _ = built
    src = root / "ab.capsule"
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                data = p.read_bytes()
                if p.name == "map.npz":
                    data = data[:-1] + bytes([data[-1] ^ 1])
                z.writestr(f"ab.capsule/{p.relative_to(src).as_posix()}", data)
    with pytest.raises(groundstate.CapsuleError, match=r"bad\.zip!/map\.npz: edited"):
        groundstate.load(archive)


def test_archive_escaping_its_folder_is_refused(tmp_path):
    import zipfile

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../escape.txt", "x")
    with pytest.raises(groundstate.CapsuleError, match="outside the archive"):
        groundstate.load(archive)
    assert not (tmp_path.parent / "escape.txt").exists()


def test_nothing_pickled(built):
    root, _, _ = built
    for name in ("map.npz", "shield.npz"):
        with np.load(root / "ab.capsule" / name, allow_pickle=False) as z:
            assert all(z[k].dtype != object for k in z.files)


def test_capsule_commands(built, capsys):
    root, _, _ = built
    path = str(root / "ab.capsule")
    assert cli.main(["capsule", "verify", path]) == 0
    assert "ok" in capsys.readouterr().out
    assert cli.main(["capsule", "info", path]) == 0
    out = capsys.readouterr().out
    assert "a [" in out and "threshold" in out and "map.npz" in out and "checksums: ok" in out
    assert cli.main(["capsule"]) == 2
    assert cli.main(["capsule", "verify", str(root / "nothing")]) == 1
    assert "no such capsule" in capsys.readouterr().err
