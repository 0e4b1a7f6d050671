"""The notebooks: committed without outputs, in step with their jupytext sources, and they run.

Each notebook in examples/notebooks/ is a jupytext ``py:percent`` source with its paired .ipynb
(for Colab). They are executed with nbclient at small sizes (``GROUNDSTATE_SMOKE=1``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
DIR = ROOT / "examples" / "notebooks"
NAMES = ("quickstart", "design_sweep", "shield", "surrogate", "backends")
TIMEOUT_S = 600  # per cell, on a loaded 2-core CI machine


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_source_has_its_notebook():
    # badges.py is the script that prints the README's badges, not a notebook
    assert sorted(p.stem for p in DIR.glob("*.py") if p.stem != "badges") == sorted(NAMES)
    assert sorted(p.stem for p in DIR.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_has_no_outputs_and_matches_its_source(name):
    nb = nbformat.read(DIR / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}.ipynb: committed outputs (strip them)"
            assert cell.execution_count is None, f"{name}.ipynb: committed execution counts"
    src = jupytext.read(DIR / f"{name}.py")
    assert _cells(nb) == _cells(src), (
        f"{name}.ipynb differs from {name}.py: run `jupytext --sync examples/notebooks/{name}.py`"
    )


def _install_cell(name: str) -> str:
    nb = jupytext.read(DIR / f"{name}.py")
    return next(c.source for c in nb.cells if c.cell_type == "code")


def test_install_cell_is_one_cell_in_every_notebook():
    """The same first code cell everywhere (edit one, copy it to the others): no guessed URL,
    a Colab form field and an environment variable for the repository, the devices printed."""
    cell = _install_cell(NAMES[0])
    for name in NAMES[1:]:
        assert _install_cell(name) == cell, f"{name}.py: first code cell differs from {NAMES[0]}"
    assert "OWNER" not in cell and "github.com" not in cell
    assert 'REPO_URL = ""  # @param {type:"string"}' in cell
    assert 'os.environ.get("GROUNDSTATE_REPO"' in cell
    assert 'find_spec("energy")' in cell and '"install", "-q", str(CHECKOUT)' in cell
    assert "jax.devices()" in cell and "No accelerator is attached" in cell
    for name in NAMES:
        assert "OWNER" not in (DIR / f"{name}.py").read_text()


def _run_cell(cell: str, cwd: Path, *, bare: bool, env_extra: dict | None = None):
    """The install cell in a fresh interpreter; ``bare``: without site-packages (-S), as on a
    runtime where groundstate is not installed (no pip is reached before the cell stops)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GROUNDSTATE_REPO")}
    env.update(JAX_PLATFORMS="cpu", **(env_extra or {}))
    cmd = [sys.executable, *(["-S"] if bare else []), "-c", cell]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_install_cell_inside_the_checkout_uses_it():
    p = _run_cell(_install_cell("quickstart"), DIR, bare=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"groundstate checkout: {ROOT}" in p.stdout
    assert "No accelerator is attached" in p.stdout  # JAX_PLATFORMS=cpu


def test_install_cell_outside_a_checkout_says_what_to_set(tmp_path):
    p = _run_cell(_install_cell("quickstart"), tmp_path, bare=True)
    assert p.returncode != 0
    assert "not inside a checkout" in p.stderr
    assert "REPO_URL" in p.stderr and "GROUNDSTATE_REPO" in p.stderr
    assert list(tmp_path.iterdir()) == []  # nothing cloned, nothing written


def test_install_cell_clones_groundstate_repo_and_checks_it(tmp_path):
    """GROUNDSTATE_REPO is cloned beside the notebook; a repository that is not groundstate
    stops the cell, and a second run finds the clone and clones nothing again."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(other)]
    for args in (["init", "-q"], ["add", "pyproject.toml"], ["commit", "-q", "-m", "x"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    work = tmp_path / "colab"
    work.mkdir()
    for _ in range(2):
        p = _run_cell(
            _install_cell("quickstart"), work, bare=True, env_extra={"GROUNDSTATE_REPO": str(other)}
        )
        assert p.returncode != 0
        assert "is not a groundstate checkout" in p.stderr and str(other) in p.stderr
        assert (work / "groundstate" / "pyproject.toml").is_file()  # the clone, kept
    assert sorted(x.name for x in work.iterdir()) == ["groundstate"]


def _badges():
    spec = importlib.util.spec_from_file_location("nb_badges", DIR / "badges.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/groundstate",
        "https://github.com/acme/groundstate.git",
        "https://github.com/acme/groundstate/",
        "git@github.com:acme/groundstate.git",
        "github.com/acme/groundstate",
    ],
)
def test_badges_read_the_github_repository(url):
    assert _badges().github_repo(url) == "acme/groundstate"


def test_badges_one_per_notebook():
    lines = _badges().badges("https://github.com/acme/gs", branch="dev")
    assert len(lines) == len(NAMES)
    for name in NAMES:
        link = f"https://colab.research.google.com/github/acme/gs/blob/dev/examples/notebooks/{name}.ipynb"
        (line,) = [x for x in lines if link in x]
        assert line.startswith("- [![Open In Colab](https://colab.research.google.com/assets/")
        assert f"`{name}`: " in line
    assert any("groundstate quickstart: lake -> map -> shield -> chains" in x for x in lines)


def test_badges_command(tmp_path):
    run = [sys.executable, "-m", "examples.notebooks.badges"]
    p = subprocess.run(
        [*run, "https://github.com/acme/gs"], cwd=ROOT, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("colab-badge.svg") == len(NAMES)
    p = subprocess.run(
        [*run, "https://gitlab.com/acme/gs"], cwd=ROOT, capture_output=True, text=True
    )
    assert p.returncode == 2 and "'https://gitlab.com/acme/gs' is not a GitHub" in p.stderr
    assert p.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_smoke_mode(name, tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDSTATE_SMOKE", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("GROUNDSTATE_COMPILATION_CACHE", "off")
    nb = jupytext.read(DIR / f"{name}.py")
    client = nbclient.NotebookClient(
        nb,
        timeout=TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(DIR)}},
    )
    client.execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
