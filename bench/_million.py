"""Child process of the chains suite: one ULA run of many chains, cold then warm, peak RSS.

python -m bench._million D CHAINS STEPS    # prints one JSON line
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from . import _common as C
    from . import chains

    d, n, steps = (int(v) for v in argv)
    m = chains.make_map(d)
    x0 = jnp.asarray(
        np.random.default_rng(0).uniform(-chains.BOX, chains.BOX, (n, d)).astype(np.float32)
    )
    fn = chains.ours(m, x0, steps, chains.step_size(d), "ula")
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    warm = time.perf_counter() - t0
    out = {
        "d": d,
        "chains": n,
        "steps": steps,
        "cold_s": cold,
        "warm_s": warm,
        "compile_s": max(cold - warm, 0.0),
        "peak_rss_mb": C.peak_rss_mb(),
        "backend": jax.default_backend(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
