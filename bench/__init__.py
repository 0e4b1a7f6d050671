"""groundstate's benchmark suite: one entry point, one process per backend, peers side by side.

    python -m bench [--quick|--smoke] [--backend cpu|gpu|tpu] [--only NAME,...] [--out DIR]
    python -m bench report [--in DIR ...] [-o OUT.md]

Suites (one module each): interp, chains, shield, surrogate, ingest, maps. Shared timing, JSON and
machine facts are in `bench._common`, the roofline of a chain-step in `bench._roofline`, the
merged report in `bench.report`. The methodology is in bench/README.md.
"""

SUITES = ("interp", "chains", "shield", "surrogate", "ingest", "maps")
