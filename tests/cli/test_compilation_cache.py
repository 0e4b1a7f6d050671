"""The command line's compilation cache: checked entries, a size cap, where it lives."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from groundstate import _compilation_cache as cc
from groundstate import cli

ENV = cc.ENV


def _entry(folder: Path, name: str, size: int, mtime: float) -> Path:
    p = folder / f"{name}-cache"
    p.write_bytes(os.urandom(size))
    os.utime(p, (mtime, mtime))
    return p


def test_verify_drops_a_changed_entry_and_one_no_finished_run_recorded(tmp_path):
    good = _entry(tmp_path, "a", 100, 1000.0)
    bad = _entry(tmp_path, "b", 100, 1000.0)
    cc.record(tmp_path)
    data = bytearray(bad.read_bytes())
    data[50] ^= 0xFF  # one flipped byte: same size, different hash
    bad.write_bytes(bytes(data))
    partial = _entry(tmp_path, "c", 10, 1000.0)  # written by a run killed before recording
    dropped = cc.verify(tmp_path)
    assert sorted(dropped) == ["b-cache", "c-cache"]
    assert good.exists() and not bad.exists() and not partial.exists()
    manifest = json.loads((tmp_path / cc.MANIFEST).read_text())
    assert set(manifest) == {"a-cache"}


def test_record_evicts_least_recently_used_entries_above_the_cap(tmp_path):
    old = _entry(tmp_path, "old", 400, 1000.0)
    mid = _entry(tmp_path, "mid", 400, 2000.0)
    new = _entry(tmp_path, "new", 400, 3000.0)
    evicted = cc.record(tmp_path, max_bytes=900)
    assert evicted == ["old-cache"]
    assert not old.exists() and mid.exists() and new.exists()
    assert set(json.loads((tmp_path / cc.MANIFEST).read_text())) == {"mid-cache", "new-cache"}


def test_the_cache_lives_in_the_platform_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cc.cache_folder().is_relative_to(tmp_path / "groundstate" / "xla")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # invalid per the XDG spec: ignored
    assert cc.cache_folder().is_relative_to(Path.home() / ".cache")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cc.cache_folder().is_relative_to(Path.home() / "Library" / "Caches")


def test_the_environment_variable_needs_an_absolute_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, "relative/folder")
    rc = cli.main(["sample", str(tmp_path / "m.npz"), "-n", "1", "-o", str(tmp_path / "o.csv")])
    assert rc == 1
    err = capsys.readouterr().err
    assert ENV in err and "absolute path" in err
    monkeypatch.setenv(ENV, "off")
    assert cc.cache_folder() is None
    monkeypatch.setenv(ENV, str(tmp_path / "c"))
    assert cc.cache_folder() == tmp_path / "c"


PROGRAM = """
import sys
import jax, jax.numpy as jnp
from groundstate import cli
folder = cli.enable_compilation_cache()
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
f = jax.jit(lambda x: jnp.sin(x) @ x + jnp.cos(x).sum())
print(float(f(jnp.ones((8, 8))).sum()))
cli._record_compilation_cache(folder)
"""


@pytest.mark.slow
def test_a_corrupt_entry_is_dropped_and_rebuilt_never_used(tmp_path):
    folder = tmp_path / "cache"
    env = dict(os.environ, JAX_PLATFORMS="cpu", **{ENV: str(folder)})
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def run():
        out = subprocess.run(
            [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "Warning" not in out.stderr and "Error" not in out.stderr, out.stderr[-2000:]
        return out.stdout.strip()

    first = run()
    entries = list(folder.glob("*-cache"))
    assert entries, "no cache entry written"
    for p in entries:  # corrupt every entry in the middle (same size)
        data = bytearray(p.read_bytes())
        data[len(data) // 2 :] = b"\0" * (len(data) - len(data) // 2)
        p.write_bytes(bytes(data))
    assert run() == first
    manifest = json.loads((folder / cc.MANIFEST).read_text())
    for p in folder.glob("*-cache"):  # rebuilt: every entry is whole again and recorded
        assert manifest[p.name]["sha256"] == cc._digest(p)
    assert run() == first  # and the rebuilt entry is used as it is
