"""The benchmark entry point runs end to end (tiny sizes, in a subprocess) and writes honest JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import _common, _roofline, report  # noqa: E402


def _bench(args, tmp_path, extra_path=None, timeout=240):
    env = dict(os.environ, JAX_PLATFORMS="cpu", GROUNDSTATE_COMPILATION_CACHE="off")
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """``python -m bench --smoke --only interp,maps`` with interpax made unimportable."""
    tmp = tmp_path_factory.mktemp("bench")
    blocked = tmp / "blocked"
    (blocked / "interpax").mkdir(parents=True)
    (blocked / "interpax" / "__init__.py").write_text('raise ImportError("blocked by the test")\n')
    p = _bench(
        ["--smoke", "--backend", "cpu", "--only", "interp,maps", "--out", str(tmp / "out")],
        tmp,
        blocked,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    files = list((tmp / "out").glob("*.json"))
    assert len(files) == 1
    return json.loads(files[0].read_text()), p.stdout, tmp / "out"


def test_json_names_the_machine_and_every_round(smoke_run):
    res, out, _ = smoke_run
    m = res["machine"]
    assert m["backend"] == "cpu" and m["device_count"] >= 1 and m["device_kind"]
    assert m["cpu_cores"] >= 1 and m["cpu_model"] and len(m["load_average"]) == 3
    assert m["versions"]["jax"] and "blackjax" in m["versions"]
    assert res["size"] == "smoke" and set(res["suites"]) == {"interp", "maps"}
    rows = res["suites"]["interp"]["rows"]
    ran = [r for r in rows if "rounds_s" in r]
    assert {r["engine"] for r in ran} >= {
        "groundstate linear",
        "groundstate linear (A/A)",
        "map_coordinates order=1",
    }
    for r in ran:
        assert len(r["rounds_s"]) == 2  # the smoke size's repeats, every round kept
        assert r["rate_min"] <= r["rate_median"] <= r["rate_max"]
        assert r["cold_s"] >= 0 and r["compile_s"] >= 0
    assert "bench (smoke) on cpu" in out


def test_missing_peer_is_a_skipped_row(smoke_run):
    res, out, _ = smoke_run
    rows = res["suites"]["interp"]["rows"]
    skipped = [r for r in rows if r["engine"] == "interpax cubic"]
    assert skipped and skipped[0]["skipped"] == "not installed"
    assert "interpax cubic" in out and "skipped: not installed" in out


def test_ratios_have_median_range_and_aa(smoke_run):
    res, out, _ = smoke_run
    ratios = res["suites"]["interp"]["ratios"]
    aa = [r for r in ratios if r["peer"] == "groundstate linear (A/A)"]
    assert aa, "the A/A noise ratio is measured"
    for r in ratios:
        assert r["min"] <= r["median"] <= r["max"] and len(r["rounds"]) == 2
    assert "groundstate linear / groundstate linear (A/A)" in out


def test_report_merges_runs(smoke_run, tmp_path):
    res, _, out_dir = smoke_run
    # A second "machine": the same run relabelled, as if from another backend.
    other = dict(res, machine=dict(res["machine"], backend="gpu", device_kind="NVIDIA L4"))
    (tmp_path / "other.json").write_text(json.dumps(other))
    (tmp_path / "old.json").write_text(json.dumps({"rows": []}))  # an old-format file
    md_path = tmp_path / "B.md"
    assert report.main(["--in", str(out_dir), str(tmp_path), "-o", str(md_path)]) == 0
    md = md_path.read_text()
    assert "| cpu " in md
    assert "gpu NVIDIA L4 (smoke, " in md
    assert "| d=2 grid=256x256 points=4096 | groundstate linear |" in md
    assert "old.json: not a `python -m bench` result" in md
    assert "## maps" in md


def test_absent_backend_stops_with_an_error(tmp_path):
    p = _bench(["--smoke", "--backend", "tpu", "--only", "maps", "--out", str(tmp_path)], tmp_path)
    assert p.returncode == 3
    assert "tpu" in p.stderr and "not present" in p.stderr
    assert not list(tmp_path.glob("*.json"))  # no result under a label that would lie


def test_unknown_suite_is_refused(tmp_path):
    p = _bench(["--only", "interp,nope"], tmp_path, timeout=60)
    assert p.returncode == 2 and "nope" in p.stderr


def test_measure_interleaves_and_keeps_errors():
    calls = []

    def eng(name):
        return lambda: calls.append(name)

    def broken():
        raise MemoryError("too big")

    t = _common.measure({"a": eng("a"), "b": eng("b"), "x": broken}, repeats=3)
    assert t["x"].error.startswith("MemoryError") and not t["x"].rounds_s
    assert len(t["a"].rounds_s) == len(t["b"].rounds_s) == 3
    # cold + warm-up for each, then rounds: every engine once per round, in varying orders
    rounds = [calls[4 + 2 * i : 6 + 2 * i] for i in range(3)]
    assert all(sorted(r) == ["a", "b"] for r in rounds) and len(calls) == 10
    r = _common.ratio("s", {}, t, "a", "b")
    assert r["min"] <= r["median"] <= r["max"] and len(r["rounds"]) == 3
    assert _common.ratio("s", {}, t, "a", "x") is None


def test_write_result_never_overwrites(tmp_path):
    res = {"machine": {"backend": "cpu", "host": "h"}, "x": 1}
    paths = {_common.write_result(res, tmp_path) for _ in range(3)}
    assert len(paths) == 3


def test_roofline_bytes_and_bounds():
    cs = _roofline.chain_step(4, "ula")
    assert cs["bytes"] == 4 * 4 + 4 * 4 + 4 * 16 + 8 * 4
    assert _roofline.chain_step(4, "mala")["bytes"] > cs["bytes"]
    assert _roofline.published("NVIDIA H200")["bandwidth_Bps"] == 4.8e12
    assert _roofline.published("NVIDIA H100 80GB HBM3")["bandwidth_Bps"] == 3.35e12
    assert _roofline.published("Tesla T4")["bandwidth_Bps"] == 320e9
    assert _roofline.published("TPU v5 lite")["bandwidth_Bps"] == 819e9
    assert _roofline.published("some new chip") is None
    b = _roofline.bound(2, "ula", {"bandwidth_Bps": 48e9, "flops": 1e15})
    assert b["bound_by"] == "memory" and np.isclose(b["bound"], 1e9)
    cpu = _roofline.measure_cpu(n_bytes=8 * 2**20, repeats=2)
    assert cpu["bandwidth_Bps"] > 1e8 and cpu["flops"] > 1e8
