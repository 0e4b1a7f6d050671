"""The notebooks: committed without outputs, in step with their jupytext sources, and they run.

Each notebook in examples/notebooks/ is a jupytext ``py:percent`` source with its paired .ipynb
(for Colab). They are executed with nbclient at small sizes (``GROUNDSTATE_SMOKE=1``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

DIR = Path(__file__).resolve().parents[1] / "examples" / "notebooks"
NAMES = ("quickstart", "design_sweep", "shield", "surrogate", "backends")
TIMEOUT_S = 600  # per cell, on a loaded 2-core CI machine


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_source_has_its_notebook():
    assert sorted(p.stem for p in DIR.glob("*.py")) == sorted(NAMES)
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


@pytest.mark.parametrize("name", NAMES)
def test_notebook_has_colab_install_cell(name):
    text = (DIR / f"{name}.py").read_text()
    assert 'REPO_URL = "' in text and 'find_spec("energy")' in text
    assert "jax.devices()" in text and "No accelerator is attached" in text
    assert f"blob/main/examples/notebooks/{name}.ipynb" in text


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
