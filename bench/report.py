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
import os
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


def _run_time(run: dict) -> str:
    """'412 s (about 230 s quiet)': the run's wall time and the estimate without other load."""
    if "seconds" not in run:
        return "-"
    quiet = run.get("quiet_s")
    return f"{run['seconds']:.0f} s" + (f" (about {quiet:.0f} s quiet)" if quiet else "")


def machines_table(runs: list[dict], labels: list[str]) -> list[str]:
    """One row per run: where each figure comes from."""
    out = [
        "| run | backend | device | CPU | cores | load avg (1/5/15 min) | run time | commit | file |"
    ]
    out += ["|---|---|---|---|---|---|---|---|---|"]
    for lab, r in zip(labels, runs, strict=True):
        m = r["machine"]
        load = "/".join(f"{v:.1f}" for v in m["load_average"] or [])
        out.append(
            f"| {lab} | {m['backend']} | {m['device_count']} x {m['device_kind']} | "
            f"{m['cpu_model']} | {m['cpu_cores']} | {load} | {_run_time(r)} | "
            f"{m.get('git_commit')} | {r['_file']} |"
        )
    return out + [""]


def times_table(runs: list[dict], labels: list[str]) -> list[str]:
    """Wall time of each suite per run, with the CPU time and the quiet estimate when known."""
    suites = list(dict.fromkeys(s for r in runs for s in r["suites"]))
    if not any("seconds" in r["suites"][s] for r in runs for s in r["suites"]):
        return []
    out = ["Time per suite: wall s (CPU s; about s on the same cores unloaded):", ""]
    out += ["| suite | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for s in suites:
        cells = []
        for r in runs:
            res = r["suites"].get(s, {})
            if "seconds" not in res:
                cells.append("")
                continue
            extra = [f"{res['cpu_s']:.0f} CPU" if "cpu_s" in res else ""]
            extra += [f"~{res['quiet_s']:.0f} quiet" if "quiet_s" in res else ""]
            extra = [e for e in extra if e]
            cells.append(f"{res['seconds']:.0f}" + (f" ({', '.join(extra)})" if extra else ""))
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    return out + [""]


def headline(runs: list[dict], labels: list[str], rounds: list[int]) -> list[str]:
    """README-ready: for each suite its largest case (the last one it ran), our rates and
    every ratio of ours over a peer with the A/A noise of the same case; a column per run.
    The number of timed rounds of every figure shown is appended to ``rounds``."""
    out = ["| suite | case | figure | " + " | ".join(labels) + " |"]
    out += ["|---|---|---|" + "---|" * len(labels)]
    suites = list(dict.fromkeys(s for r in runs for s in r["suites"]))
    for s in suites:
        cases: dict[str, dict] = {}
        for r in runs:
            rat = r["suites"].get(s, {}).get("ratios", [])
            if rat:
                cases.setdefault(json.dumps(rat[-1]["case"], sort_keys=True), rat[-1]["case"])
        for ck, case_dict in cases.items():
            lines: dict[str, list[str]] = {}
            for j, r in enumerate(runs):
                res = r["suites"].get(s, {})
                rat = [
                    x for x in res.get("ratios", []) if json.dumps(x["case"], sort_keys=True) == ck
                ]
                ours = list(dict.fromkeys(x["ours"] for x in rat))
                for row in res.get("rows", []):
                    if row["engine"] in ours and json.dumps(row["case"], sort_keys=True) == ck:
                        name = f"{row['engine']}: M {row.get('unit', '')}/s"
                        lines.setdefault(name, [""] * len(runs))[j] = C.fmt_rate(row)
                        rounds.append(len(row.get("rounds_s", [])))
                for x in rat:
                    aa = x["peer"].endswith("(A/A)")
                    name = f"{x['ours']} / {x['peer']}" + (" (noise)" if aa else "")
                    lines.setdefault(name, [""] * len(runs))[j] = C.fmt_ratio(x)
                    rounds.append(len(x["rounds"]))
            case = _case(case_dict)
            for name, cells in lines.items():
                out.append(f"| {s} | {case} | {name} | " + " | ".join(cells) + " |")
    return out + [""]


def summary(runs: list[dict], notes: list[str], image: str | None = None) -> str:
    """The README's Benchmarks section: the machines, the headline table, the plot."""
    labels = labels_of(runs)
    rounds: list[int] = []
    table = headline(runs, labels, rounds)
    out = machines_table(runs, labels)
    out += [
        f"Rates: median [min-max] of the interleaved rounds ({min(rounds, default=0)} or more "
        "per figure); ratios: speed of ours over the peer in the same round (above 1: ours is "
        "faster), median [min-max]; the A/A line is the noise floor of the run. The largest "
        "case of each suite; every case is in `python -m bench report`.",
        "",
    ]
    out += table
    if image:
        out += [f"![chain-steps per second against chains, per backend and peer]({image})", ""]
    return "\n".join(out)


def markdown(runs: list[dict], notes: list[str]) -> str:
    labels = labels_of(runs)
    out = ["# groundstate benchmarks", ""]
    out += ["Machines (one column each below):", ""]
    out += machines_table(runs, labels)
    out += times_table(runs, labels)
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
    """Chain-steps/s against chains, log-log, one panel per d: a colour per engine (ours and
    the peers), a line style per run (machine and backend), bars from the slowest to the
    fastest round; the one-million-chain run (warm) as a star on its panel."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labels = labels_of(runs)
    pts: dict[int, dict[tuple[str, int], list]] = {}
    stars: dict[int, list] = {}
    for k, r in enumerate(runs):
        res = r["suites"].get("chains", {})
        for row in res.get("rows", []):
            if "rate_median" not in row or "(A/A)" in row["engine"]:
                continue
            pts.setdefault(row["case"]["d"], {}).setdefault((row["engine"], k), []).append(
                (row["case"]["chains"], row["rate_median"], row["rate_min"], row["rate_max"])
            )
        mil = res.get("million")
        if mil and "warm_s" in mil:
            rate = mil["chains"] * mil["steps"] / mil["warm_s"]
            stars.setdefault(mil["d"], []).append((mil["chains"], rate, k))
    if not pts:
        return None
    engines = sorted({e for lines in pts.values() for e, _ in lines})
    cmap = plt.get_cmap("tab10")
    color = {e: cmap(i % 10) for i, e in enumerate(engines)}
    styles = ["-", "--", ":", "-."]
    dims = sorted(pts)
    fig, axes = plt.subplots(1, len(dims), figsize=(5.5 * len(dims), 4.6), squeeze=False)
    for ax, d in zip(axes[0], dims, strict=True):
        lines = sorted(pts[d].items())
        for i, ((engine, k), v) in enumerate(lines):
            v.sort()
            # a small sideways shift per line, so that bars at the same chain count stay apart
            shift = 1.04 ** (i - (len(lines) - 1) / 2)
            x = [a[0] * shift for a in v]
            y = [a[1] for a in v]
            err = [[a[1] - a[2] for a in v], [a[3] - a[1] for a in v]]
            ours = engine.startswith("ours")
            ax.errorbar(
                x,
                y,
                yerr=err,
                marker="o",
                ms=4,
                capsize=2,
                lw=2.2 if ours else 1.2,
                ls=styles[k % len(styles)],
                color=color[engine],
                label=engine + (f" - {labels[k]}" if len(runs) > 1 else ""),
            )
        for n, rate, k in stars.get(d, []):
            ax.plot(
                [n],
                [rate],
                marker="*",
                ms=12,
                ls="none",
                color=color.get("ours-ula", "k"),
                label="ours-ula, 1M chains (warm)" + (f" - {labels[k]}" if len(runs) > 1 else ""),
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ns = [a[0] for v in pts[d].values() for a in v] + [n for n, _, _ in stars.get(d, [])]
        ax.set_xlim(min(ns) / 2, max(ns) * 2)  # at least two octaves, whatever the counts
        ax.set_title(f"d = {d}")
        ax.set_xlabel("chains")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("chain-steps / s (median; bars: min-max)")
    axes[0][-1].legend(fontsize=6, loc="best")
    if len(runs) == 1:
        fig.suptitle(labels[0], fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench report", description=__doc__.splitlines()[0])
    p.add_argument(
        "--in", dest="inputs", nargs="+", default=[str(C.RESULTS)], help="files or folders"
    )
    p.add_argument("-o", "--output", default=None, help="Markdown file (default: print)")
    p.add_argument(
        "--summary",
        action="store_true",
        help="README-ready: the machines, the largest case of each suite and the plot",
    )
    p.add_argument(
        "--plot",
        default=None,
        help="the chains plot (.png; default beside -o as <stem>-chains.png, none without -o)",
    )
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
    out = Path(args.output) if args.output else None
    if out and out.exists() and out.suffix != ".md":
        print(f"bench report: {out} exists and is not a .md file: not overwritten", file=sys.stderr)
        return 2
    png_path = (
        Path(args.plot) if args.plot else (out.with_name(out.stem + "-chains.png") if out else None)
    )
    if png_path and png_path.suffix != ".png":
        print(f"bench report: --plot {png_path} must end in .png", file=sys.stderr)
        return 2
    png = plot(runs, png_path) if png_path else None
    # the image's link, relative to where the Markdown goes (or to here when printed)
    image = (
        Path(os.path.relpath(png, (out.parent if out else Path.cwd()))).as_posix() if png else None
    )
    if args.summary:
        md = summary(runs, notes, image)
    else:
        md = markdown(runs, notes)
        if image:
            md += f"\n![chain-steps per second against chains]({image})\n"
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        print(f"wrote {out}" + (f" and {png}" if png else ""))
    else:
        print(md)
        if png:
            print(f"(wrote {png})", file=sys.stderr)
    return 0
