"""Draws the ecosystem reads: an xarray.Dataset with chain/draw dims, and ArviZ on it.

ArviZ here is its 1.x stack (``arviz-base`` for the containers, ``arviz-stats`` for the
diagnostics), in the dev extra; ``import arviz`` 0.x warns on import (a FutureWarning, once a day)
and would fail under ``filterwarnings = error``.
"""

from __future__ import annotations

import arviz_base  # the dev extra: no skip
import arviz_stats
import numpy as np
import pytest

import langevin
from langevin._xarray import to_arviz, to_xarray


def ar1_draws(n_chains=8, n_draws=1000, phis=(0.0, 0.5, 0.9), seed=1):
    """AR(1) chains ``(n_chains, n_draws, k)``, one autocorrelation per coordinate."""
    rng = np.random.default_rng(seed)
    phi = np.asarray(phis)
    x = np.zeros((n_chains, n_draws, phi.size))
    z = rng.normal(size=x.shape)
    x[:, 0] = z[:, 0] / np.sqrt(1 - phi**2)  # stationary start
    for t in range(1, n_draws):
        x[:, t] = phi * x[:, t - 1] + z[:, t]
    return x


def test_dataset_has_chain_draw_dims_names_and_values():
    x = ar1_draws(n_chains=3, n_draws=50, phis=(0.1, 0.2))
    ds = to_xarray(x, ["speed", "power"], energies=x[..., 0] ** 2, attrs={"thin": 5})
    assert list(ds.data_vars) == ["speed", "power", "energy"]
    assert dict(ds["speed"].sizes) == {"chain": 3, "draw": 50}
    np.testing.assert_array_equal(ds["power"].values, x[:, :, 1])
    np.testing.assert_array_equal(ds["chain"].values, np.arange(3))
    np.testing.assert_array_equal(ds["energy"].values, x[..., 0] ** 2)
    assert ds.attrs["thin"] == 5
    assert list(to_xarray(x).data_vars) == ["x0", "x1"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"names": ["a"]}, "names has 1 entries"),
        ({"names": ["a", "a"]}, "'a'] repeated"),
        ({"names": ["a", ""]}, "non-empty strings"),
        ({"names": ["energy", "b"], "energies": np.zeros((2, 5))}, "named 'energy'"),
        ({"energies": np.zeros((5, 2))}, r"energies must have shape \(n_chains, n_draws\)"),
    ],
)
def test_bad_names_and_shapes_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        to_xarray(np.zeros((2, 5, 2)), **kwargs)


def test_bad_draw_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \(n_chains, n_draws, d\), got \(5, 2\)"):
        to_xarray(np.zeros((5, 2)))


def test_arviz_reads_it():
    x = ar1_draws()
    tree = to_arviz(x, ["a", "b", "c"], energies=(x**2).sum(-1))
    assert set(tree.children) == {"posterior", "sample_stats"}
    # ArviZ's own converter takes the Dataset as a posterior.
    dt = arviz_base.convert_to_datatree(to_xarray(x, ["a", "b", "c"]))
    np.testing.assert_array_equal(dt["posterior"]["b"].values, x[:, :, 1])
    summary = arviz_stats.summary(tree)
    assert list(summary.index) == ["a", "b", "c"]
    np.testing.assert_allclose(summary["mean"].to_numpy(), x.mean(axis=(0, 1)), atol=0.01)


def test_split_rhat_is_arviz_split_rhat():
    """The classic split R-hat (BDA3; our only one before): ArviZ's ``method="split"``."""
    x = ar1_draws()
    x[..., 2] = np.exp(x[..., 2])  # a skewed coordinate
    x[:2] += 0.3  # two chains off: R-hat well above 1
    ours = langevin.rhat(np.swapaxes(x, 0, 1), method="split")  # ours: (n_draws, n_chains, ...)
    ds = to_xarray(x, ["a", "b", "c"])
    theirs = arviz_stats.rhat(ds, method="split")
    np.testing.assert_allclose(ours, [float(theirs[n]) for n in "abc"], rtol=1e-10)
    assert ours.min() > 1.01


@pytest.mark.parametrize("n_draws", [1000, 999, 40])
def test_rhat_and_ess_agree_with_arviz(n_draws):
    """Each of our estimators equals ArviZ's of the same name (well within 1%: to rounding).

    Before, our ESS was Geyer's sequence on unsplit raw draws without Stan's last even term:
    1.03% above ArviZ's "identity" on independent draws, and far from its default "bulk"
    (rank-normalised, split) on heavy tails. Defaults now follow Vehtari et al. (2021).
    """
    x = ar1_draws(n_draws=n_draws)
    x[..., 2] = np.exp(x[..., 2])  # heavy right tail
    x[:2] += 0.1
    draws = np.swapaxes(x, 0, 1)  # ours take (n_draws, n_chains, ...)
    ds = to_xarray(x, ["a", "b", "c"])
    cases = [
        (langevin.rhat(draws), arviz_stats.rhat(ds)),  # rank-normalised split R-hat
        (langevin.rhat(draws, method="split"), arviz_stats.rhat(ds, method="split")),
        (langevin.ess(draws), arviz_stats.ess(ds)),  # bulk ESS
        (langevin.ess(draws, method="mean"), arviz_stats.ess(ds, method="mean")),
    ]
    for ours, theirs in cases:
        np.testing.assert_allclose(ours, [float(theirs[n]) for n in "abc"], rtol=1e-9)


def test_rank_rhat_sees_a_scale_difference_that_split_rhat_misses():
    """Chains with the same mean but half of them 3x wider: the classic R-hat reads ~1."""
    x = ar1_draws(n_chains=8, n_draws=1000, phis=(0.0,), seed=3)
    x[:4] *= 3.0
    draws = np.swapaxes(x, 0, 1)
    assert langevin.rhat(draws, method="split")[0] < 1.01
    assert langevin.rhat(draws)[0] > 1.05


def test_unknown_methods_are_refused():
    with pytest.raises(ValueError, match="rhat method must be 'rank' or 'split', got 'bulk'"):
        langevin.rhat(np.zeros((10, 2)), method="bulk")
    with pytest.raises(ValueError, match="ess method must be 'bulk' or 'mean', got 'rank'"):
        langevin.ess(np.zeros((10, 2)), method="rank")
