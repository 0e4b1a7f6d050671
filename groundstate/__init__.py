"""groundstate: the command line and the workflow across ``energy``, ``langevin`` and ``ingest``.

This package is the thin face of the project: it imports the three packages, and none of them
imports it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
