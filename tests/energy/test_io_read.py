"""How `energy.load` reads a file (issue 10): members read in place, every check kept.

Our own files' members are read with one ``readinto`` each (not through np.load's copies) and
hashed in place; the zip CRC-32 is still checked, so a file np.load refuses is refused; anything
else (compressed members, ...) is read by np.load as before. A saved log Z is reused only for
the very energies it was computed from.
"""

from __future__ import annotations

import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

import energy
from energy import _io, _map, _pyramid

sys.path.insert(0, str(Path(__file__).parent))
from test_io import _resealed  # noqa: E402


def _map_with_pyramid(shape=(16, 12, 10), seed=0):
    # every member larger than the 4 kB zipfile reads at once (else zipfile checks its CRC)
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    e = sum(2.0 * g**2 for g in grids) + 0.1 * rng.normal(size=shape)
    m = energy.EnergyMap.from_grid(e, [(-1.0, 1.0)] * len(shape))
    _ = m.noise_levels  # builds the pyramid: the file stores it
    return m


@pytest.fixture
def saved(tmp_path):
    m = _map_with_pyramid()
    path = tmp_path / "map.npz"
    m.save(path)
    return m, path


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write_members(out, members):
    """A zip of stored members with fresh CRC-32s (what a careful editor would write)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out


def _data_offset(path, member):
    """Offset in the file of ``member``'s array data (after its .npy header)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
        with z.open(info) as f:
            version = np.lib.format.read_magic(f)
            reader = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
            reader(f)
            head = f.tell()
    raw = path.read_bytes()
    name_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    return info.header_offset + 30 + name_len + extra_len, head


@pytest.mark.parametrize("mapped", [False, True])
def test_arrays_are_read_in_place_equal_to_np_load(saved, monkeypatch, mapped):
    if mapped:  # every array into populated anonymous memory (else only those >= 8 MB)
        monkeypatch.setattr(_io, "_POPULATE_BYTES", 0)
    m, path = saved
    with np.load(path, allow_pickle=False) as f:
        expected = {k: f[k] for k in f.files}
    through_np_load = []
    real = np.lib.npyio.NpzFile.__getitem__

    def spy(self, key):
        through_np_load.append(key)
        return real(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", spy)
    arrays, meta = _io.read_npz(path, "groundstate.energy_map")
    assert through_np_load == ["meta"]  # energies and pyramid were read in place
    assert sorted(arrays) == ["energies", "pyramid"]
    for k, a in arrays.items():
        assert a.dtype == expected[k].dtype and a.shape == expected[k].shape
        assert np.array_equal(a, expected[k])
        assert a.ctypes.data % 64 == 0 and a.flags.c_contiguous and a.flags.writeable
        root = a
        while isinstance(root, np.ndarray) and root.base is not None:
            root = root.base
        assert (not isinstance(root, np.ndarray)) == mapped  # mapped: a buffer of the mmap
    m2 = energy.load(path)
    assert np.array_equal(np.asarray(m2.values), np.asarray(m.values))
    for a, b in zip(m.pyramid, m2.pyramid, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("on_thread", [False, True])
def test_a_flipped_data_byte_is_refused_by_the_zip_crc(saved, tmp_path, monkeypatch, on_thread):
    if on_thread:  # every member's CRC-32 on the worker thread
        monkeypatch.setattr(_io, "_CRC_THREAD_BYTES", 0)
    _, path = saved
    start, head = _data_offset(path, "pyramid.npy")
    raw = bytearray(path.read_bytes())
    raw[start + head + 5] ^= 0x01
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(raw))
    threads = threading.active_count()
    with pytest.raises(energy.MapFileError, match=r"flipped\.npz: .*Bad CRC-32.*pyramid"):
        energy.load(bad)
    assert threading.active_count() == threads  # the CRC thread is joined, whatever happens


def test_a_flipped_header_padding_byte_is_refused(saved, tmp_path):
    # The header still parses to the same array: only the zip CRC-32 tells; np.load refuses it,
    # and so must load.
    _, path = saved
    start, head = _data_offset(path, "energies.npy")
    raw = bytearray(path.read_bytes())
    assert raw[start + head - 2 : start + head] == b" \n"
    raw[start + head - 2] = ord("\t")
    bad = tmp_path / "padding.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(zipfile.BadZipFile):
        with np.load(bad, allow_pickle=False) as f:
            f["energies"]
    with pytest.raises(energy.MapFileError, match=r"padding\.npz: .*Bad CRC-32.*energies"):
        energy.load(bad)


def test_a_data_byte_edited_with_a_fresh_crc_fails_the_checksum(saved, tmp_path):
    _, path = saved
    members = _members(path)
    data = bytearray(members["pyramid.npy"])
    data[-3] ^= 0x10
    members["pyramid.npy"] = bytes(data)
    bad = _write_members(tmp_path / "edited.npz", members)
    with pytest.raises(
        energy.MapFileError, match=r"edited\.npz: checksum mismatch in array pyramid"
    ):
        energy.load(bad)


def test_a_malformed_npy_header_is_refused_as_np_load_refuses_it(saved, tmp_path):
    _, path = saved
    members = _members(path)
    data = members["energies.npy"]
    assert b"'<f4'" in data[:128]
    members["energies.npy"] = data.replace(b"'<f4'", b"'<f9'", 1)
    bad = _write_members(tmp_path / "header.npz", members)
    with pytest.raises(ValueError):
        with np.load(bad, allow_pickle=False) as f:
            f["energies"]
    with pytest.raises(energy.MapFileError, match=r"header\.npz: ") as err:
        energy.load(bad)
    assert isinstance(err.value.__cause__, ValueError)


def test_a_compressed_copy_loads_through_np_load(saved, tmp_path):
    m, path = saved
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez_compressed(tmp_path / "z.npz", **arrays)
    m2 = energy.load(tmp_path / "z.npz")
    assert np.array_equal(np.asarray(m2.values), np.asarray(m.values))
    assert np.array_equal(np.asarray(m2._pyramid), np.asarray(m._pyramid))
    # and a compressed member is still checked: an edit is refused
    arrays["energies"] = arrays["energies"] + np.float32(1.0)
    np.savez_compressed(tmp_path / "zbad.npz", **arrays)
    with pytest.raises(
        energy.MapFileError, match=r"zbad\.npz: checksum mismatch in array energies"
    ):
        energy.load(tmp_path / "zbad.npz")


def test_a_40_cubed_map_loads_as_saved_without_integrating(tmp_path, monkeypatch):
    m = _map_with_pyramid((40, 40, 40), seed=1)
    m.save(tmp_path / "m40.npz")
    calls = []
    real = _pyramid.log_integral
    monkeypatch.setattr(_pyramid, "log_integral", lambda *a: calls.append(1) or real(*a))
    m2 = energy.load(tmp_path / "m40.npz")
    assert calls == []  # log Z read from the file, for these very energies
    assert float(m2.log_z) == float(m.log_z)
    assert np.array_equal(np.asarray(m2.values), np.asarray(m.values))
    assert np.array_equal(np.asarray(m2._pyramid), np.asarray(m._pyramid))
    x = np.random.default_rng(2).uniform(-1, 1, (64, 3)).astype(np.float32)
    assert np.array_equal(np.asarray(m2.log_prob(x)), np.asarray(m.log_prob(x)))
    assert np.array_equal(np.asarray(m2.energy_at(x, 0.1)), np.asarray(m.energy_at(x, 0.1)))


def test_a_saved_log_z_is_used_only_for_its_own_energies(saved, tmp_path, monkeypatch):
    m, path = saved
    calls = []
    real = _pyramid.log_integral
    monkeypatch.setattr(_pyramid, "log_integral", lambda *a: calls.append(1) or real(*a))

    def edit(arrays, meta):  # new energies, checksum made again, log_z left as it was
        arrays["energies"] = arrays["energies"] * np.float32(2.0)
        del arrays["pyramid"], meta["pyramid_level_shapes"]

    m2 = energy.load(_resealed(path, tmp_path / "edited.npz", edit))
    assert calls == [1]  # integrated again: the saved log Z was another energies'
    fresh = energy.EnergyMap.from_grid(np.asarray(m.values) * 2.0, m.bounds)
    assert float(m2.log_z) == float(fresh.log_z) != float(m.log_z)

    calls.clear()
    m3 = energy.load(_resealed(path, tmp_path / "old.npz", lambda a, meta: meta.pop("log_z")))
    assert calls == [1]  # a file without it (saved before it was stored): integrated
    assert float(m3.log_z) == float(m.log_z)


@pytest.mark.parametrize(
    "bad",
    [float("nan"), 1.0, {"value": "0.3", "energies": ""}, {"value": True, "energies": ""}],
)
def test_a_malformed_log_z_is_refused(saved, tmp_path, bad):
    _, path = saved

    def edit(arrays, meta):
        meta["log_z"] = bad

    out = _resealed(path, tmp_path / "badlogz.npz", edit)
    with pytest.raises(energy.MapFileError, match=r"badlogz\.npz: metadata field log_z"):
        energy.load(out)


def test_finiteness_by_a_sum_and_a_count_where_it_overflows():
    big = np.full(1000, 3e38, np.float32)  # finite, but its sum overflows to inf
    assert _map._count_nonfinite(big) == 0
    big[[3, 7]] = [np.nan, -np.inf]
    assert _map._count_nonfinite(big) == 2
    assert _map._count_nonfinite(np.zeros(5, np.float32)) == 0
