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


def test_each_suite_has_its_time(smoke_run):
    """Wall and CPU time of every suite, the load around it and the quiet estimate, in the JSON
    and in the printed table."""
    res, out, _ = smoke_run
    for name in ("interp", "maps"):
        s = res["suites"][name]
        assert s["seconds"] > 0 and s["cpu_s"] > 0
        assert len(s["load_start"]) == 3 and len(s["load_end"]) == 3
        assert s["quiet_s"] >= s["cpu_s"]
        assert f"({name}: " in out and " s CPU, load " in out
    assert res["quiet_s"] == pytest.approx(sum(s["quiet_s"] for s in res["suites"].values()))
    table = out[out.index("== time per suite") :]
    assert "interp" in table and "maps" in table and "all" in table


def test_quiet_estimate_is_cpu_or_load_scaled_wall():
    # loaded (mean 1-min load 8 on 2 cores): a quarter of the wall time, unless the CPU is more
    assert _common.quiet_estimate(100.0, 10.0, [8, 0, 0], [8, 0, 0], cores=2) == 25.0
    assert _common.quiet_estimate(100.0, 40.0, [8, 0, 0], [8, 0, 0], cores=2) == 40.0
    # a quiet machine: the wall time
    assert _common.quiet_estimate(100.0, 150.0, [0.5, 0, 0], [1.0, 0, 0], cores=2) == 150.0
    assert _common.quiet_estimate(100.0, 50.0, [0.5, 0, 0], [1.0, 0, 0], cores=2) == 100.0
    assert _common.quiet_estimate(100.0, 50.0, None, None, cores=2) == 100.0


def test_profile_replaces_only_its_keys():
    import types

    mod = types.SimpleNamespace(
        SIZES={"quick": {"work": 10, "repeats": 5}, "full": {"work": 100, "repeats": 5}}
    )
    own = mod.SIZES
    changed = _common.apply_profile(mod, "s", "full", {"full": {"s": {"SIZES": {"work": 7}}}})
    assert changed == {"SIZES": {"work": 7}}
    assert mod.SIZES["full"] == {"work": 7, "repeats": 5} and mod.SIZES["quick"]["work"] == 10
    assert own["full"]["work"] == 100  # the suite's own table is not modified
    assert _common.apply_profile(mod, "other", "full", {"full": {"s": {}}}) == {}
    # GPU and TPU runs keep the suites' own sizes
    plan = {"quick": {"s": {"SIZES": {"work": 3}}}}
    assert _common.apply_profile(mod, "s", "quick", plan, backend="gpu") == {}
    assert mod.SIZES["quick"]["work"] == 10
    with pytest.raises(KeyError, match=r"s.SIZES\['full'\] has no key\(s\) \['wrok'\]"):
        _common.apply_profile(mod, "s", "full", {"full": {"s": {"SIZES": {"wrok": 1}}}})
    with pytest.raises(KeyError, match="s.CMD_SIZES has no size 'full'"):
        _common.apply_profile(mod, "s", "full", {"full": {"s": {"CMD_SIZES": {"mb": 1}}}})
    with pytest.raises(ValueError, match="repeats < 5"):
        _common.apply_profile(mod, "s", "full", {"full": {"s": {"SIZES": {"repeats": 3}}}})


def test_profiles_match_the_suites():
    """Every entry of the time budget names a key its suite really reads (a suite that renames
    a key would otherwise silently run at its own, slower, size)."""
    import importlib
    import types

    for size, suites in _common.PROFILES.items():
        for suite, plan in suites.items():
            mod = importlib.import_module(f"bench.{suite}")
            tables = types.SimpleNamespace(**{attr: getattr(mod, attr, None) for attr in plan})
            assert _common.apply_profile(tables, suite, size) == plan


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


def test_report_summary_and_plot_for_the_readme(smoke_run, tmp_path):
    """--summary: the machines, the largest case of each suite with its A/A noise, and the
    plot written where --plot says, linked relative to the Markdown."""
    pytest.importorskip("matplotlib")
    res, _, _ = smoke_run
    chains = {
        "rows": [
            {
                "case": {"d": 2, "chains": n},
                "engine": e,
                "unit": "chain-steps",
                "rate_median": r,
                "rate_min": 0.9 * r,
                "rate_max": 1.1 * r,
                "rounds_s": [1.0] * 5,
            }
            for n in (1000, 10000)
            for e, r in (("ours-ula", 2e6), ("ours-ula (A/A)", 2e6), ("numba-ula", 1e6))
        ],
        "ratios": [],
        "million": {"d": 2, "chains": 1_000_000, "steps": 10, "warm_s": 4.0},
    }
    run = dict(res, suites=dict(res["suites"], chains=chains))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "run.json").write_text(json.dumps(run))
    md_path = tmp_path / "out" / "bench.md"
    png = tmp_path / "docs" / "img" / "chains.png"
    args = ["--in", str(tmp_path / "in"), "--summary", "--plot", str(png), "-o", str(md_path)]
    assert report.main(args) == 0
    md = md_path.read_text()
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert (
        "![chain-steps per second against chains, per backend and peer](../docs/img/chains.png)"
        in md
    )
    assert "| run | backend | device |" in md and "run time" in md
    # interp's largest smoke case, its rate, its A/A line and its peer
    assert "| interp | d=2 grid=256x256 points=4096 | groundstate linear: M points/s |" in md
    assert "groundstate linear / groundstate linear (A/A) (noise)" in md
    assert "groundstate linear / map_coordinates order=1" in md
    assert "## interp" not in md  # the per-case tables are in the full report only
    assert report.main(args[:-2] + ["--plot", str(tmp_path / "x.svg")]) == 2


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
