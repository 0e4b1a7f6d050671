"""Pictures (PNG) with matplotlib, the optional ``plot`` extra: ``pip install 'groundstate[plot]'``.

Every function draws on its own ``matplotlib.figure.Figure`` (no pyplot, no global state, no
display needed), writes ``out`` and returns the figure, so the data drawn can be checked.

- :func:`landscape`: a 2-D map with contour lines (more axes: the 2-D marginals in a corner
  grid), optionally the shield's envelope (the threshold contour), chains, discovery points,
  known-bad states and decided states (allowed / blocked);
- :func:`traces`: annealing traces (energy per recorded step, per level);
- :func:`ingest_summary`: rows by reason and per-variable marginals of the counted data;
- :func:`sweep`: a discovery table as a curve over the swept variable.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["MISSING", "ingest_summary", "landscape", "require", "sweep", "traces"]

MISSING = (
    "pictures need matplotlib, the optional 'plot' extra: pip install 'groundstate[plot]' "
    "(or pip install matplotlib)"
)
_DPI = 110


def require():
    """Import matplotlib's Figure, or raise ImportError with the install line."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(MISSING) from err
    return Figure


def _save(fig, out) -> Any:
    out = os.fspath(out)
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=_DPI)
    os.replace(tmp, out)
    return fig


def _label(m, i: int) -> str:
    u = m.units[i] if m.units and m.units[i] else ""
    return f"{m.names[i]} [{u}]" if u else str(m.names[i])


def _marginal(values: np.ndarray, i: int, j: int) -> np.ndarray:
    """Energy of the 2-D marginal of exp(-E) over axes (i, j) (other axes summed out)."""
    e = np.asarray(values, dtype=np.float64)
    others = tuple(k for k in range(e.ndim) if k not in (i, j))
    shift = e.min()
    p = np.exp(-(e - shift))
    q = p.sum(axis=others) if others else p
    if i > j:
        q = q.T
    with np.errstate(divide="ignore"):
        return -np.log(q) + shift


def landscape(
    m,
    out,
    *,
    shield=None,
    chains=None,
    discovery: dict | None = None,
    known_bad: list | None = None,
    states=None,
    decisions=None,
    title: str | None = None,
):
    """Draw the map (2-D: image + contours; more: corner grid of 2-D marginals) to ``out``.

    Args:
        m: an ``energy.EnergyMap``.
        out: the PNG to write.
        shield: draw its envelope, the contour ``E = threshold`` (2-D maps).
        chains: ``(n, d)`` chain states drawn as dots.
        discovery: a discovery result (``_discovery.run``): its states drawn as a line.
        known_bad: known-bad checks: drawn as crosses (finite ones).
        states, decisions: states ``(n, d)`` and their ``energy.Decision``: allowed in green,
            blocked in red.
        title: the figure title.

    Returns:
        The matplotlib Figure (``fig.axes[0].images[0].get_array()`` holds the first panel).
    """
    Figure = require()
    v = np.asarray(m.values, dtype=np.float64)
    d = v.ndim
    pairs = [(0, 1)] if d == 2 else [(i, j) for j in range(d) for i in range(d) if i > j]
    if d == 1:
        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        ax.plot(m.grid[0], v, color="k")
        if shield is not None:
            ax.axhline(float(shield.threshold), color="C3", ls="--", label="shield threshold")
            ax.legend()
        ax.set_xlabel(_label(m, 0))
        ax.set_ylabel("energy")
        if title:
            ax.set_title(title)
        fig.tight_layout()
        return _save(fig, out)
    n = 1 if d == 2 else d - 1
    fig = Figure(figsize=(6.5, 5.0) if d == 2 else (2.6 * n, 2.4 * n))
    axes = {}
    for i, j in pairs:
        # Panel (row i-1, column j): x axis = variable j, y axis = variable i.
        k = 1 if d == 2 else (i - 1) * n + j + 1
        ax = fig.add_subplot(n, n, k)
        axes[(i, j)] = ax
        e = v.T if d == 2 else _marginal(v, j, i).T  # rows = y (i), columns = x (j)
        if d == 2:
            i, j = 1, 0
        ext = [*m.bounds[j], *m.bounds[i]]
        finite = e[np.isfinite(e)]
        vmax = np.percentile(finite, 98) if finite.size else 1.0
        im = ax.imshow(e, origin="lower", extent=ext, aspect="auto", cmap="viridis_r", vmax=vmax)
        ax.contour(m.grid[j], m.grid[i], e, levels=8, colors="k", linewidths=0.4, alpha=0.6)
        if shield is not None and d == 2:
            ax.contour(
                m.grid[j],
                m.grid[i],
                e,
                levels=[float(shield.threshold)],
                colors="C3",
                linewidths=1.5,
            )
        if chains is not None:
            c = np.asarray(chains)
            ax.plot(c[:, j], c[:, i], ".", ms=1.5, color="w", alpha=0.5)
        if states is not None and decisions is not None:
            s = np.asarray(states)
            ok = np.asarray(decisions.allow)
            ax.plot(s[ok, j], s[ok, i], "o", ms=3, color="C2", label="allowed")
            ax.plot(s[~ok, j], s[~ok, i], "x", ms=4, color="C3", label="blocked")
        if discovery is not None:
            pts = np.array([r["state"] for r in discovery["rows"] if r["state"] is not None])
            if len(pts):
                ax.plot(pts[:, j], pts[:, i], "o-", color="C1", ms=4, label="discovery")
        if known_bad:
            pts = [b["state"] for b in known_bad if all(x is not None for x in b["state"])]
            if pts:
                p = np.array(pts, dtype=np.float64)
                ax.plot(p[:, j], p[:, i], "X", color="C3", ms=7, mec="w", label="known bad")
        ax.set_xlim(*m.bounds[j])
        ax.set_ylim(*m.bounds[i])
        if d == 2 or i == d - 1:
            ax.set_xlabel(_label(m, j))
        if d == 2 or j == 0:
            ax.set_ylabel(_label(m, i))
        if d == 2:
            fig.colorbar(im, ax=ax, label="energy E = -log p")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", fontsize=8)
    if title or (shield is not None and d == 2):
        fig.suptitle(
            title or f"energy landscape; red: shield envelope E = {float(shield.threshold):.2f}"
        )
    fig.tight_layout()
    return _save(fig, out)


def traces(res, out, *, title: str | None = None):
    """Annealing traces: the energy of every recorded step (median and 5-95 % band over chains).

    Needs a result sampled with ``thin`` (an ``energy_trace``).
    """
    Figure = require()
    if getattr(res, "energy_trace", None) is None:
        raise ValueError("traces need an energy trace: sample with thin=k")
    e = np.asarray(res.energy_trace, dtype=np.float64)
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    steps = np.arange(e.shape[0])
    med = np.nanmedian(e, axis=1)
    lo, hi = np.nanpercentile(e, [5, 95], axis=1)
    ax.fill_between(steps, lo, hi, color="C0", alpha=0.3, label="5-95 % of chains")
    ax.plot(steps, med, color="C0", label="median")
    ax.set_xlabel("recorded step")
    ax.set_ylabel("energy")
    ax.legend()
    ax.set_title(title or f"{res.method}, {e.shape[1]} chains; schedule {res.schedule}")
    fig.tight_layout()
    return _save(fig, out)


def ingest_summary(m, report: dict, out):
    """Rows used and dropped by reason, and each variable's marginal of the counted data."""
    Figure = require()
    d = m.ndim
    fig = Figure(figsize=(3.2 * (d + 1), 3.2))
    ax = fig.add_subplot(1, d + 1, 1)
    reasons = {"used": int(report.get("rows_used", 0)), **report.get("rows_dropped", {})}
    ax.barh(list(reasons), list(reasons.values()), color=["C2"] + ["C3"] * (len(reasons) - 1))
    ax.set_xlabel("rows")
    ax.set_title("rows by reason")
    v = np.asarray(m.values, dtype=np.float64)
    p = np.exp(-(v - v.min()))
    for i in range(d):
        axi = fig.add_subplot(1, d + 1, i + 2)
        marg = p.sum(axis=tuple(k for k in range(d) if k != i))
        axi.plot(m.grid[i], marg / marg.sum(), color="C0")
        axi.set_xlabel(_label(m, i))
        axi.set_yticks([])
        axi.set_title("share of rows")
    fig.tight_layout()
    return _save(fig, out)


def sweep(result: dict, out):
    """A discovery table drawn over its swept variable (one panel per other variable)."""
    Figure = require()
    names = result["names"]
    c = names.index(result["condition"])
    rows = [r for r in result["rows"] if r["state"] is not None]
    others = [i for i in range(len(names)) if i != c] or [c]
    fig = Figure(figsize=(3.6 * len(others), 3.4))
    x = np.array([r["state"][c] for r in rows]) if rows else np.zeros(0)
    for k, i in enumerate(others):
        ax = fig.add_subplot(1, len(others), k + 1)
        y = np.array([r["state"][i] for r in rows]) if rows else np.zeros(0)
        ax.plot(x, y, "o-", color="C1")
        ax.set_xlabel(result["condition"])
        ax.set_ylabel(names[i])
    fig.suptitle(result["title"])
    fig.tight_layout()
    return _save(fig, out)
