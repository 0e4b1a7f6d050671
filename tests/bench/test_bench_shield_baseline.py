"""bench/shield.py with BENCH_SHIELD_BASELINE: another version's shield in the same rounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("baseline", ["file", "revision"])
def test_shield_suite_times_a_baseline_shield(tmp_path, baseline):
    """The baseline's shield(x) and shield.allow(x) run interleaved, with ratios ours/baseline,
    for a baseline _shield.py file and for a git revision's energy package; every one of our
    rows has its CPU time per round, and the result the load average around the rounds."""
    spec = str(ROOT / "energy" / "_shield.py") if baseline == "file" else "HEAD"
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        GROUNDSTATE_COMPILATION_CACHE="off",
        BENCH_SHIELD_BASELINE=spec,
    )
    args = ["--smoke", "--backend", "cpu", "--only", "shield", "--out", str(tmp_path)]
    p = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    (out,) = tmp_path.glob("*.json")
    res = json.loads(out.read_text())["suites"]["shield"]
    ran = {r["engine"] for r in res["rows"] if "rounds_s" in r}
    assert {"shield(x) [baseline]", "shield.allow(x) [baseline]"} <= ran
    pairs = {(r["ours"], r["peer"]) for r in res["ratios"]}
    assert ("shield(x)", "shield(x) [baseline]") in pairs
    assert "shield(x) / shield(x) [baseline]" in p.stdout
    assert ("shield(x) + p_value", "shield(x) [baseline]") in pairs
    timed = [r for r in res["rows"] if "rounds_s" in r]
    assert {"shield(x)", "shield(x) + p_value", "IsolationForest.score_samples"} <= ran
    for r in timed:
        assert len(r["cpu_rounds_s"]) == len(r["rounds_s"]) and r["cpu_s"]["median"] > 0
    assert len(res["load_average"]["before"]) == 3


def test_shield_suite_names_a_missing_baseline_file(tmp_path, monkeypatch):
    """A baseline path that is not a file is an error naming the variable and the path."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench import shield

    monkeypatch.setenv("BENCH_SHIELD_BASELINE", str(tmp_path / "nope.py"))
    with pytest.raises(FileNotFoundError, match="BENCH_SHIELD_BASELINE=.*nope.py"):
        shield._baseline_module()
    monkeypatch.setenv("BENCH_SHIELD_BASELINE", "no-such-revision-of-this-checkout")
    with pytest.raises(subprocess.CalledProcessError):
        shield._baseline_module()
    monkeypatch.delenv("BENCH_SHIELD_BASELINE")
    assert shield._baseline_module() is None
