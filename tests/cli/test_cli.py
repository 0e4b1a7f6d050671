"""The groundstate command: sub-commands are registered; negative option values parse."""

from __future__ import annotations

import numpy as np
import pytest

import energy
from groundstate import cli


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in ("demo", "ingest", "shield", "sample"):
        assert name in out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_negative_bounds_need_no_equals_sign(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "a.csv").write_text("x,y\n-1,2\n-3,4\n0.5,1\n")
    out = tmp_path / "m.npz"
    args = ["ingest", str(lake), "--var", "x", "--var", "y", "--bins", "8"]
    assert cli.main([*args, "--bounds", "-5:5,0:10", "-o", str(out)]) == 0
    assert energy.load(out).bounds == ((-5.0, 5.0), (0.0, 10.0))
    assert cli._glue_negative_values(["--bounds", "-.5:1"]) == ["--bounds=-.5:1"]
    assert cli._glue_negative_values(["--bounds", "0:1", "-o", "x"]) == [
        "--bounds",
        "0:1",
        "-o",
        "x",
    ]
    m = energy.load(out)
    assert m.n_samples == 3 and np.isfinite(np.asarray(m.values)).all()


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert (
        cli.main(["shield", "check", str(tmp_path / "missing.npz"), str(tmp_path / "s.csv")]) == 1
    )
    assert "missing.npz" in capsys.readouterr().err


def test_compilation_cache_is_per_host_and_used(tmp_path):
    """The command line's persistent cache lands under XDG_CACHE_HOME and receives entries."""
    import os
    import subprocess
    import sys

    code = (
        "import jax, jax.numpy as jnp\n"
        "from groundstate import cli\n"
        "folder = cli.enable_compilation_cache()\n"
        "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)\n"
        "f = jax.jit(lambda x: jnp.sin(x) @ x)\n"
        "f(jnp.ones((8, 8))).block_until_ready()\n"
        "print(folder)\n"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), JAX_PLATFORMS="cpu")
    env.pop("GROUNDSTATE_COMPILATION_CACHE", None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    folder = out.stdout.strip().splitlines()[-1]
    assert folder.startswith(str(tmp_path / "groundstate" / "xla"))
    assert os.listdir(folder), f"no cache entry written: {out.stderr[-2000:]}"
    env["GROUNDSTATE_COMPILATION_CACHE"] = "off"
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert off.stdout.strip().splitlines()[-1] == "None"


def test_demo_runs_end_to_end(tmp_path, capsys):
    """The README's first command: the whole workflow on the embedded data."""
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--chains", "512"]) == 0
    text = capsys.readouterr().out
    for step in ("1. ingest", "2. energy", "3. shield", "4. langevin", "done in"):
        assert step in text
    assert "BLOCK (not finite)" in text and "BLOCK (out of bounds)" in text
    m = energy.load(out / "wind.npz")
    assert m.names == ("wind_speed", "power") and m.units == ("m/s", "kW")
    assert energy.Shield.load(out / "shield.npz").threshold > 0
    samples = np.loadtxt(out / "samples.csv", delimiter=",", skiprows=1)
    assert samples.shape == (512, 2) and np.isfinite(samples).all()


def test_ingest_help_imports_no_jax():
    """``groundstate ingest --help`` parses without importing jax or flax."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from groundstate import cli\n"
        "try:\n"
        "    cli.main(['ingest', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('jax', 'flax', 'energy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_ingest_sets_the_compilation_cache_up_during_the_crawl(tmp_path):
    """``groundstate ingest`` starts its work before jax is imported: the compilation cache
    (which imports jax) is set up just before the map build (in the command's own thread), and
    recorded when the command ends."""
    import json
    import os
    import subprocess
    import sys

    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "a.csv").write_text("x,y\n-1,2\n-3,4\n0.5,1\n")
    code = (
        "import sys, threading\n"
        "from groundstate import cli, _cmd_ingest\n"
        "seen = {}\n"
        "real_run, real_enable = _cmd_ingest.run, cli.enable_compilation_cache\n"
        "def run(args):\n"
        "    seen['jax at start'] = 'jax' in sys.modules\n"
        "    return real_run(args)\n"
        "def enable():\n"
        "    seen['thread'] = threading.current_thread().name\n"
        "    return real_enable()\n"
        "_cmd_ingest.run, cli.enable_compilation_cache = run, enable\n"
        f"code = cli.main(['ingest', {str(lake)!r}, '--var', 'x', '--var', 'y', '--bins', '8',\n"
        f"                 '--workers', '1', '-o', {str(tmp_path / 'm.npz')!r}])\n"
        "print(code, seen)\n"
    )
    cache = tmp_path / "cache"
    env = dict(os.environ, GROUNDSTATE_COMPILATION_CACHE=str(cache), JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("0 "), out.stdout[-2000:]
    assert "'jax at start': False" in last
    assert "'thread': 'MainThread'" in last
    # recorded at the end: the manifest exists (possibly empty: short compiles are not kept)
    assert isinstance(json.loads((cache / "groundstate-manifest.json").read_text()), dict)
