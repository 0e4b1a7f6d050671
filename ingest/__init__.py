"""ingest: a data lake of HDF5, NetCDF and CSV logs crawled into counts and energy maps.

Files are recognised by their first bytes; variables are picked by leaf name or profile alias,
CF-decoded, converted to the asked units with pint, and counted chunk by chunk into a histogram
on the map's node grid, in parallel processes or any ``concurrent.futures.Executor``. A crawl
with an output is resumable after a crash: its state sits beside the output.

Example:
    >>> import ingest
    >>> m, report = ingest.ingest("lake/", ["ws:m/s", "p:kW"], profile="wind",
    ...                           output="wind.npz")  # doctest: +SKIP
"""

from ._crawl import BusyError as BusyError
from ._crawl import Counts as Counts
from ._crawl import EmptyCrawlError as EmptyCrawlError
from ._crawl import StateError as StateError
from ._crawl import count as count
from ._crawl import discover as discover
from ._crawl import ingest as ingest
from ._crawl import state_path as state_path
from ._profiles import Profile as Profile
from ._profiles import ProfileError as ProfileError
from ._profiles import ProfileVariable as ProfileVariable
from ._profiles import VarSpec as VarSpec
from ._profiles import available_profiles as available_profiles
from ._profiles import load_profile as load_profile
from ._profiles import parse_var as parse_var
from ._profiles import resolve_vars as resolve_vars
from ._readers import detect as detect
from ._report import IngestReport as IngestReport
from ._units import UnitError as UnitError
from ._units import conversion as conversion
from ._units import normalise_unit as normalise_unit

__all__ = [
    "BusyError",
    "Counts",
    "EmptyCrawlError",
    "IngestReport",
    "Profile",
    "ProfileError",
    "ProfileVariable",
    "StateError",
    "UnitError",
    "VarSpec",
    "available_profiles",
    "conversion",
    "count",
    "detect",
    "discover",
    "ingest",
    "load_profile",
    "normalise_unit",
    "parse_var",
    "resolve_vars",
    "state_path",
]
