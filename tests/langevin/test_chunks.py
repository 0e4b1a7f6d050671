"""A run cut in chunks (`langevin._runner.run_in_chunks`) gives the uncut run's numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from langevin import _prepare, _runner
from langevin._options import Options


def quad(x):
    return 0.5 * x @ x + 0.1 * jnp.sin(3.0 * x[0])


CASES = {
    "map_ula": ("map", dict(n_chains=100, n_steps=60)),
    "fn_ula": ("fn", dict(n_chains=70, n_steps=50, init=jnp.zeros(2), n_warmup=40)),
    "fn_mala": ("fn", dict(n_chains=70, n_steps=50, init=jnp.zeros(2), method="mala", n_warmup=40)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_chunked_run_is_bit_identical_to_the_uncut_run(name, song_ermon_map):
    kind, kw = CASES[name]
    target = song_ermon_map if kind == "map" else quad
    prep = _prepare.prepare(target, jax.random.key(3), Options(progress=False, **kw))
    full = _runner.compiled(prep.p, prep.cfg)
    seen = []
    for chunk in (7, 25):
        cut = _runner.run_in_chunks(prep.p, prep.cfg, chunk, on_chunk=seen.append)
        for k, v in full.items():
            if v is not None:
                np.testing.assert_array_equal(np.asarray(cut[k]), np.asarray(v), err_msg=k)
    assert len(seen) == 60 // 7 + 60 // 25 if name == "map_ula" else len(seen) == 50 // 7 + 50 // 25
