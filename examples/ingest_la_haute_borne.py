"""Crawl the La Haute Borne wind-turbine SCADA extract into a (wind speed, power) energy map.

The data (ENGIE, Etalab Open Licence 2.0; see data/LICENCE-la-haute-borne.md) has no units in
its CSV header: the `wind` profile names them (`source_units`), from the data set's own
SCADA_data_description.csv. The basin of the map, the most visited power at each wind speed,
traces the turbine's power curve.

    python examples/ingest_la_haute_borne.py [OUT.npz]
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile

import numpy as np

import ingest

HERE = os.path.dirname(os.path.abspath(__file__))


def main(out: str | None = None) -> int:
    with tempfile.TemporaryDirectory() as lake:
        with zipfile.ZipFile(os.path.join(HERE, "data", "la_haute_borne.zip")) as z:
            z.extractall(lake)
        m, report = ingest.ingest(
            lake,
            ["wind_speed:m/s", "power:kW"],
            profile="wind",
            bins=(51, 48),
            output=out,
            progress=False,
        )
    print(report)
    ws = np.linspace(*m.bounds[0], m.shape[0])
    p = np.linspace(*m.bounds[1], m.shape[1])
    basin = p[np.argmin(np.asarray(m.values), axis=1)]
    print("\nwind speed [m/s] -> basin power [kW] (the power curve the turbine proved)")
    for w, b in zip(ws[::4], basin[::4], strict=True):
        print(f"  {w:5.1f} -> {b:7.0f}")
    if out:
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
