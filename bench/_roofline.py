"""Roofline of a Langevin chain-step: bytes and flops per step and the bound they put on a device.

Per chain-step of ULA on a d-dimensional float32 map (``langevin.sample``'s compiled loop keeps
the ensemble in memory between steps):

- state: read x (4d bytes) and write x' (4d);
- stencil: the 2^d corners of the cell around x, gathered from the map (4 * 2^d bytes; an upper
  bound on DRAM traffic when the map does not fit in cache, a lower one on what is touched);
- RNG: d normal draws written and read once (8d bytes);
- MALA adds the energy and gradient of the proposal kept in the state (2 * 4(d+1) bytes), and a
  uniform draw (8 bytes).

Flops (float32) per step: multilinear value and gradient, ``2^d * (d + 1)`` weights of d factors
each (``2^d * (d + 1) * d`` multiplies, as many adds), plus the update (3d). MALA evaluates the
energy and gradient of the proposal again and the acceptance (about 4d more).

The bound is min(bandwidth / bytes, peak flops / flops) chain-steps per second. On the CPU the
bandwidth is measured in the same run (a STREAM-like add over arrays much larger than the cache)
and the flops by a float32 matrix product; on GPU/TPU they come from the published figures
below (per chip), matched on ``jax.devices()[0].device_kind``.
"""

from __future__ import annotations

import time

import numpy as np

# device_kind substring (lower case) -> (memory bandwidth B/s, float32 peak flop/s), per chip.
# Vendor data sheets; the first match in this order wins (longer names first).
PUBLISHED = (
    ("h200", 4.8e12, 67e12),
    ("h100 pcie", 2.0e12, 51e12),
    ("h100", 3.35e12, 67e12),
    ("a100-sxm4-80gb", 2.0e12, 19.5e12),
    ("a100 80gb pcie", 1.94e12, 19.5e12),
    ("a100", 1.555e12, 19.5e12),
    ("l40s", 864e9, 91.6e12),
    ("l4", 300e9, 30.3e12),
    ("a10g", 600e9, 31.2e12),
    ("t4", 320e9, 8.1e12),
    ("v100", 900e9, 15.7e12),
    ("p100", 732e9, 9.3e12),
    ("tpu v6 lite", 1.64e12, 918e12 / 4),
    ("tpu v5 lite", 819e9, 197e12 / 4),
    ("tpu v5p", 2.765e12, 459e12 / 4),
    ("tpu v5", 2.765e12, 459e12 / 4),
    ("tpu v4", 1.2e12, 275e12 / 4),
    ("tpu v3", 900e9, 123e12 / 4),
    ("tpu v2", 700e9, 45e12 / 4),
)
# TPU peaks are quoted for bf16 matrix units; float32 element-wise work runs at a fraction of
# that (taken as 1/4 here, an estimate): the bound for chains is the bandwidth in practice.


def published(device_kind: str) -> dict | None:
    """The published (bandwidth, flops) of a device kind, or None when it is not in the table."""
    kind = device_kind.lower()
    for key, bw, fl in PUBLISHED:
        if key in kind:
            return {"bandwidth_Bps": bw, "flops": fl, "source": f"published ({key})"}
    return None


def measure_cpu(n_bytes: int = 256 * 2**20, repeats: int = 5) -> dict:
    """STREAM-like bandwidth (``c = a + b`` on float64 arrays of ``n_bytes`` each: 3 arrays
    moved) and float32 matmul flop/s of this CPU, best of ``repeats``."""
    n = n_bytes // 8
    a, b = np.ones(n), np.full(n, 2.0)
    c = np.empty(n)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.add(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    bw = 3 * n * 8 / best
    k = 1024
    x = np.ones((k, k), np.float32)
    x @ x
    best_mm = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        x @ x
        best_mm = min(best_mm, time.perf_counter() - t0)
    del a, b, c
    return {
        "bandwidth_Bps": bw,
        "flops": 2 * k**3 / best_mm,
        "source": f"measured in this run (numpy add of {n_bytes >> 20} MiB arrays, sgemm {k}^3)",
    }


def device_limits(backend: str, device_kind: str) -> dict:
    """The roofline limits of the device the run is on (measured on CPU, else published)."""
    if backend == "cpu":
        return measure_cpu()
    return published(device_kind) or {
        "bandwidth_Bps": None,
        "flops": None,
        "source": f"no published figure for {device_kind!r}: add it to bench/_roofline.py",
    }


def chain_step(d: int, method: str = "ula") -> dict:
    """Bytes and flops of one chain-step (see the module docstring)."""
    corners = 2**d
    nbytes = 4 * d + 4 * d + 4 * corners + 8 * d
    flops = 2 * corners * (d + 1) * d + 3 * d
    if method == "mala":
        nbytes += 2 * 4 * (d + 1) + 8
        flops += 4 * d
    return {"bytes": nbytes, "flops": flops}


def bound(d: int, method: str, limits: dict) -> dict:
    """Chain-steps/s the device allows (memory and compute bounds, the smaller one wins)."""
    cs = chain_step(d, method)
    bw, fl = limits.get("bandwidth_Bps"), limits.get("flops")
    if not bw or not fl:
        return {**cs, "bound": None}
    mem, comp = bw / cs["bytes"], fl / cs["flops"]
    return {
        **cs,
        "memory_bound": mem,
        "compute_bound": comp,
        "bound": min(mem, comp),
        "bound_by": "memory" if mem <= comp else "compute",
    }
