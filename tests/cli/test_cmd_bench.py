"""``groundstate bench`` passes its arguments to ``python -m bench`` in the checkout."""

from __future__ import annotations

import argparse

from groundstate import _cmd_bench


def _parse(argv):
    parser = argparse.ArgumentParser()
    _cmd_bench.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_arguments_pass_through(tmp_path, capsys):
    args = _parse(["bench", "report", "--in", str(tmp_path)])
    assert _cmd_bench.bench_argv(args) == ["report", "--in", str(tmp_path)]
    opts = _parse(["bench", "--quick", "--backend", "gpu", "--only", "chains,interp"])
    assert _cmd_bench.bench_argv(opts) == ["--quick", "--backend", "gpu", "--only", "chains,interp"]
    assert _cmd_bench.checkout() is not None
    # An empty folder: the report says there is nothing to merge, and the code comes back.
    assert _cmd_bench.run(args) == 2


def test_outside_a_checkout(monkeypatch, capsys):
    monkeypatch.setattr(_cmd_bench, "checkout", lambda: None)
    assert _cmd_bench.run(_parse(["bench", "--quick"])) == 2
    assert "clone" in capsys.readouterr().err
