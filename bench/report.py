"""``python -m bench report``: merge JSON results of several machines/backends into Markdown + plots.

    python -m bench report                         # every run in bench/results/
    python -m bench report --in a/ b/run.json -o BENCHMARKS.md

For every suite: one table of rates (median [min-max] of the timed rounds) with a column per
machine, one table of ratios (ours over the peer, median [range] of the per-round ratios, A/A
rows are the noise floor), and for chains the roofline (bytes and flops per chain-step, the
device's bound and the fraction of it reached). With matplotlib, a log-log plot of chain-steps/s
against the number of chains per backend and engine is written beside the Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import _common as C


def load_runs(paths: list[str]) -> tuple[list[dict], list[str]]:
    """The runs in the given files/folders (newest schema only), and notes on what was skipped."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"bench report: no such file or folder: {p}")
    runs, notes = [], []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as err:
            notes.append(f"{f}: not read ({err})")
            continue
        if not isinstance(data, dict) or data.get("schema") != C.SCHEMA:
            notes.append(f"{f}: not a `python -m bench` result (schema {C.SCHEMA}): skipped")
            continue
        data["_file"] = f.name
        runs.append(data)
    return runs, notes


def label(run: dict) -> str:
    m = run["machine"]
    dev = m["device_kind"] if m["backend"] != "cpu" else f"{m['cpu_cores']}-core CPU"
    return f"{m['backend']} {dev} ({run['size']}, {m['host']})"


def labels_of(runs: list[dict]) -> list[str]:
    """One column label per run, made unique with a counter where two runs look alike."""
    out: list[str] = []
    for r in runs:
        lab = label(r)
        k = sum(1 for o in out if o == lab or o.startswith(lab + " #"))
        out.append(lab if k == 0 else f"{lab} #{k + 1}")
    return out


def _case(case: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in case.items())


def _key(row: dict) -> tuple:
    return (json.dumps(row["case"], sort_keys=True), row["engine"])


def _cell_rate(row: dict | None) -> str:
    if row is None:
        return ""
    return C.fmt_rate(row)


def markdown(runs: list[dict], notes: list[str]) -> str:
    labels = labels_of(runs)
    out = ["# groundstate benchmarks", ""]
    out += ["Machines (one column each below):", ""]
    out += ["| run | backend | device | CPU | cores | load avg (1/5/15 min) | commit | file |"]
    out += ["|---|---|---|---|---|---|---|---|"]
    for lab, r in zip(labels, runs, strict=True):
        m = r["machine"]
        load = "/".join(f"{v:.1f}" for v in m["load_average"] or [])
        out.append(
            f"| {lab} | {m['backend']} | {m['device_count']} x {m['device_kind']} | "
            f"{m['cpu_model']} | {m['cpu_cores']} | {load} | {m.get('git_commit')} | {r['_file']} |"
        )
    out.append("")
    suites = []
    for r in runs:
        for s in r["suites"]:
            if s not in suites:
                suites.append(s)
    for s in suites:
        per = [r["suites"].get(s, {}) for r in runs]
        unit = next(
            (row.get("unit") for p in per for row in p.get("rows", []) if "unit" in row), ""
        )
        out += [
            f"## {s}",
            "",
            f"Rates in millions of {unit} per second, median [min-max] of the rounds.",
            "",
        ]
        out += ["| case | engine | " + " | ".join(labels) + " |"]
        out += ["|---|---|" + "---|" * len(labels)]
        keys: list[tuple] = []
        by = []
        for p in per:
            d = {}
            for row in p.get("rows", []):
                k = _key(row)
                d[k] = row
                if k not in keys:
                    keys.append(k)
            by.append(d)
        for k in keys:
            case = _case(json.loads(k[0]))
            out.append(
                f"| {case} | {k[1]} | " + " | ".join(_cell_rate(d.get(k)) for d in by) + " |"
            )
        out.append("")
        rkeys: list[tuple] = []
        rby = []
        for p in per:
            d = {}
            for r in p.get("ratios", []):
                k = (json.dumps(r["case"], sort_keys=True), f"{r['ours']} / {r['peer']}")
                d[k] = r
                if k not in rkeys:
                    rkeys.append(k)
            rby.append(d)
        if rkeys:
            out += ["Ratios (speed of the first over the second; A/A = noise floor):", ""]
            out += ["| case | ratio | " + " | ".join(labels) + " |"]
            out += ["|---|---|" + "---|" * len(labels)]
            for k in rkeys:
                cells = [C.fmt_ratio(d.get(k)) if k in d else "" for d in rby]
                out.append(f"| {_case(json.loads(k[0]))} | {k[1]} | " + " | ".join(cells) + " |")
            out.append("")
        roof = [(lab, p) for lab, p in zip(labels, per, strict=True) if p.get("roofline")]
        if roof:
            out += ["Roofline of a chain-step (bound = min(bandwidth / bytes, flops / flop)):", ""]
            out += [
                "| run | limits | case | engine | B/step | flop/step | bound M/s | measured M/s | fraction |"
            ]
            out += ["|---|---|---|---|---|---|---|---|---|"]
            for lab, p in roof:
                lim = p["limits"]
                bw, fl = lim.get("bandwidth_Bps"), lim.get("flops")
                lims = (
                    f"{bw / 1e9:.1f} GB/s, {fl / 1e9:.0f} GFLOP/s ({lim['source']})"
                    if bw and fl
                    else lim["source"]
                )
                for r in p["roofline"]:
                    b = f"{r['bound'] / 1e6:.0f} ({r['bound_by']})" if r.get("bound") else "-"
                    meas = f"{r['rate_median'] / 1e6:.1f}" if r.get("rate_median") else "-"
                    frac = f"{r['fraction_of_bound']:.1%}" if r.get("fraction_of_bound") else "-"
                    out.append(
                        f"| {lab} | {lims} | {_case(r['case'])} | {r['engine']} | {r['bytes']} | "
                        f"{r['flops']} | {b} | {meas} | {frac} |"
                    )
            out.append("")
        for lab, p in zip(labels, per, strict=True):
            mil = p.get("million")
            if mil and "error" not in mil:
                out.append(
                    f"- {lab}: {mil['chains']:,} chains, d = {mil['d']}, {mil['steps']} steps: "
                    f"{mil['cold_s']:.1f} s with compilation, {mil['warm_s']:.1f} s without, "
                    f"peak RSS {mil['peak_rss_mb']:.0f} MB"
                )
        out.append("")
    if notes:
        out += ["Files not used:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def plot(runs: list[dict], path: Path) -> Path | None:
    """Chain-steps/s against chains, log-log, one panel per d, a line per run and engine."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    pts: dict[int, dict[str, list]] = {}
    for r in runs:
        for row in r["suites"].get("chains", {}).get("rows", []):
            if "rate_median" not in row or "(A/A)" in row["engine"]:
                continue
            line = f"{row['engine']} ({label(r)})"
            pts.setdefault(row["case"]["d"], {}).setdefault(line, []).append(
                (row["case"]["chains"], row["rate_median"], row["rate_min"], row["rate_max"])
            )
    if not pts:
        return None
    fig, axes = plt.subplots(1, len(pts), figsize=(6 * len(pts), 4.5), squeeze=False)
    for ax, (d, lines) in zip(axes[0], sorted(pts.items()), strict=True):
        for name, v in sorted(lines.items()):
            v.sort()
            x = [a[0] for a in v]
            y = [a[1] for a in v]
            err = [[a[1] - a[2] for a in v], [a[3] - a[1] for a in v]]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"d = {d}")
        ax.set_xlabel("chains")
        ax.set_ylabel("chain-steps / s (median, bars: min-max)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench report", description=__doc__.splitlines()[0])
    p.add_argument(
        "--in", dest="inputs", nargs="+", default=[str(C.RESULTS)], help="files or folders"
    )
    p.add_argument("-o", "--output", default=None, help="Markdown file (default: print)")
    args = p.parse_args(argv)
    try:
        runs, notes = load_runs(args.inputs)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    if not runs:
        print(
            f"bench report: no `python -m bench` results in {', '.join(args.inputs)}",
            file=sys.stderr,
        )
        return 2
    md = markdown(runs, notes)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists() and out.suffix != ".md":
            print(
                f"bench report: {out} exists and is not a .md file: not overwritten",
                file=sys.stderr,
            )
            return 2
        png = plot(runs, out.with_name(out.stem + "-chains.png"))
        if png:
            md += f"\n![chain-steps per second against chains]({png.name})\n"
        out.write_text(md)
        print(f"wrote {out}" + (f" and {png}" if png else ""))
    else:
        print(md)
    return 0
