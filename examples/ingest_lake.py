"""A small synthetic data lake (HDF5 with groups, NetCDF 3 and 4, CSV) crawled into a map.

Each format states its own units (cm, ms, degF, rpm ...); the crawl converts them to the asked
ones, drops glitches outside the `grid` profile's physical range, and reports every skip.

    python examples/ingest_lake.py
"""

from __future__ import annotations

import os
import sys
import tempfile

import h5py
import numpy as np

import ingest


def write_lake(root: str, seed: int = 0) -> None:
    """Frequency (Hz, mHz deviation or rpm of a 2-pole machine) and active power (MW or kW)."""
    rng = np.random.default_rng(seed)
    n = 5000
    f = 50.0 + 0.05 * rng.standard_normal(n)
    p = 300.0 - 2000.0 * (f - 50.0) + 10.0 * rng.standard_normal(n)  # droop control
    with h5py.File(os.path.join(root, "pmu.h5"), "w") as h:
        for site in ("north", "south"):
            g = h.create_group(site)
            g.create_dataset("freq", data=f, chunks=(1000,)).attrs["units"] = "Hz"
            g.create_dataset("p_mw", data=p, chunks=(1000,)).attrs["units"] = "MW"
    try:
        import netCDF4
    except ImportError:  # netCDF4 is a dev extra: the crawl itself does not need it
        netCDF4 = None
    if netCDF4 is not None:
        with netCDF4.Dataset(os.path.join(root, "scada.nc"), "w", format="NETCDF3_CLASSIC") as ds:
            ds.createDimension("time", None)
            # The rotor speed of a 2-pole generator, logged in rpm: 3000 rpm = 50 turns/s = 50 Hz
            # (pint alone would say 314 Hz: radians per second).
            v = ds.createVariable("freq", "f4", ("time",))
            v.units = "rpm"
            v[:] = f * 60.0
            w = ds.createVariable("power", "f4", ("time",))
            w.units = "kW"
            w[:] = p * 1000.0
    with open(os.path.join(root, "logger.csv"), "w") as fh:
        fh.write("frequency [Hz],active_power (MW)\n")
        for a, b in zip(f[:1000], p[:1000], strict=True):
            fh.write(f"{a:.5f},{b:.3f}\n")
        fh.write("-- logger restarted --\n")  # a junk line: counted, not fatal
        fh.write("0.0,0.0\n")  # a glitch outside the profile's 40..70 Hz: dropped, counted
    with open(os.path.join(root, "README.txt"), "w") as fh:
        fh.write("not data\n")


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        # The map is written beside the lake, never inside it (ingest refuses an output in the
        # folder it crawls).
        root = os.path.join(work, "lake")
        os.mkdir(root)
        write_lake(root)
        profile = ingest.load_profile("grid")
        print(f"profile {profile.name}: {profile.description}")
        m, report = ingest.ingest(
            root,
            ["frequency:Hz", "active_power:MW"],
            profile="grid",
            bounds=[(49.8, 50.2), (-200.0, 800.0)],
            bins=48,
            workers=1,
            progress=False,
            output=os.path.join(work, "grid.npz"),
        )
        print(report)
        print(m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
