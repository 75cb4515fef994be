from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.surrogates import TanimotoGPSurrogate, TanimotoKernel


def test_tanimoto_kernel_matches_hand_computed_similarities() -> None:
    x = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    k = TanimotoKernel().forward(x, x)
    expected = torch.tensor([[1.0, 1 / 3, 0.0], [1 / 3, 1.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(k, expected)
    torch.testing.assert_close(TanimotoKernel().forward(x, x, diag=True), torch.ones(3))


def _fingerprints() -> tuple[np.ndarray, np.ndarray]:
    # two families of fingerprints; y depends on the family
    rng = np.random.default_rng(0)
    base_a, base_b = np.zeros(64), np.zeros(64)
    base_a[:20], base_b[32:52] = 1, 1
    rows, ys = [], []
    for i in range(16):
        base, y = (base_a, 2.0) if i % 2 == 0 else (base_b, 8.0)
        noise = (rng.random(64) < 0.05).astype(float)
        rows.append(np.clip(base + noise, 0, 1))
        ys.append(y + 0.1 * rng.standard_normal())
    return np.array(rows), np.array(ys)


def test_gp_learns_families_and_is_confident_near_data_only() -> None:
    x, y = _fingerprints()
    gp = TanimotoGPSurrogate().fit(x[:12], y[:12])
    mean, std = gp.predict(x[12:])
    np.testing.assert_allclose(mean, y[12:], atol=0.8)
    far = np.zeros((1, 64))
    far[0, 56:] = 1  # shares no bit with either family
    far_mean, far_std = gp.predict(far)
    assert far_std[0] > 1.5 * std.max()
    assert abs(far_mean[0] - y[:12].mean()) < 1.0


def test_gp_rejects_bad_training_data() -> None:
    x, y = _fingerprints()
    with pytest.raises(ValueError, match="at least 2"):
        TanimotoGPSurrogate().fit(x[:1], y[:1])
    with pytest.raises(ValueError, match="finite"):
        TanimotoGPSurrogate().fit(x[:3], np.array([1.0, np.nan, 2.0]))
    with pytest.raises(RuntimeError, match="not fitted"):
        TanimotoGPSurrogate().predict(x)


def _two_fidelities() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fingerprints with a cheap fidelity f(x) and a trusted one 0.8 f(x) + 1.5 (offset and
    scale, as between a DFT gap and a measured one)."""
    rng = np.random.default_rng(0)
    x = (rng.random((120, 64)) < 0.15).astype(float)
    f = x @ rng.normal(size=64) / 3
    return x, f + 0.02 * rng.normal(size=120), 0.8 * f + 1.5 + 0.05 * rng.normal(size=120)


def test_multifidelity_gp_transfers_cheap_results_to_the_trusted_fidelity() -> None:
    from pipeline.surrogates import MultiFidelityGPSurrogate

    x, cheap, trusted = _two_fidelities()
    cheap_rows, trusted_rows, test = np.arange(100), np.arange(12), np.arange(100, 120)
    x_all = np.concatenate([x[cheap_rows], x[trusted_rows]])
    y_all = np.concatenate([cheap[cheap_rows], trusted[trusted_rows]])
    levels = np.concatenate([np.zeros(100, dtype=int), np.ones(12, dtype=int)])
    multi = MultiFidelityGPSurrogate().fit(x_all, y_all, fidelity=levels)
    assert multi.target_level == 1
    mean, std = multi.predict(x[test])
    err_multi = np.abs(mean - trusted[test]).mean()
    only_trusted = TanimotoGPSurrogate().fit(x[trusted_rows], trusted[trusted_rows])
    err_trusted = np.abs(only_trusted.predict(x[test])[0] - trusted[test]).mean()
    pooled = TanimotoGPSurrogate().fit(x_all, y_all)
    err_pooled = np.abs(pooled.predict(x[test])[0] - trusted[test]).mean()
    assert err_multi < 0.6 * err_trusted and err_multi < 0.5 * err_pooled
    assert np.all(std > 0)
    # it predicts the trusted fidelity, offset included, not the cheap one
    assert abs(mean.mean() - trusted[test].mean()) < abs(mean.mean() - cheap[test].mean())


def test_multifidelity_gp_with_one_fidelity_is_the_tanimoto_gp() -> None:
    from pipeline.surrogates import MultiFidelityGPSurrogate

    x, y = _fingerprints()
    multi = MultiFidelityGPSurrogate().fit(x, y, fidelity=np.zeros(len(y), dtype=int))
    single = TanimotoGPSurrogate().fit(x, y)
    np.testing.assert_allclose(multi.predict(x[:4])[0], single.predict(x[:4])[0], atol=1e-6)
    with pytest.raises(ValueError, match="integer levels"):
        MultiFidelityGPSurrogate().fit(x, y, fidelity=np.zeros(len(y)) + 0.5)
    with pytest.raises(ValueError, match=">= 0"):
        MultiFidelityGPSurrogate().fit(x, y, fidelity=-np.ones(len(y), dtype=int))


def test_qlognei_runs_on_the_multifidelity_posterior() -> None:
    from pipeline.acquisition import QLogNEIAcquisition
    from pipeline.objectives import Objective
    from pipeline.surrogates import MultiFidelityGPSurrogate

    x, cheap, trusted = _two_fidelities()
    levels = np.concatenate([np.zeros(60, dtype=int), np.ones(8, dtype=int)])
    multi = MultiFidelityGPSurrogate().fit(np.concatenate([x[:60], x[:8]]),
                                           np.concatenate([cheap[:60], trusted[:8]]), levels)
    pool = x[60:]
    sel = QLogNEIAcquisition().select(pool, 4, objective=Objective(property="y", goal="maximize"),
                                      seed=0, surrogate=multi, x_train=x[:60])
    assert len(set(sel.indices)) == 4
    # the first pick is among the pool's best by the trusted fidelity's predicted mean
    best = np.argsort(-multi.predict(pool)[0])[:10]
    assert sel.indices[0] in best


def test_prior_gp_recalibrates_a_shifted_prior_and_corrects_it_with_labels() -> None:
    from pipeline.surrogates import PriorGPSurrogate

    rng = np.random.default_rng(1)
    x = (rng.random((300, 200)) < 0.05).astype(float)
    truth = x @ rng.normal(size=200)
    prior = 0.9 * truth + 2.0 + 0.3 * rng.normal(size=300)  # another level of theory: offset
    labelled, test = np.arange(15), np.arange(15, 300)
    model = PriorGPSurrogate().fit(x[labelled], truth[labelled], prior_x=x, prior_values=prior)
    mean, std = model.predict(x[test])
    err = np.abs(mean - truth[test]).mean()
    plain = TanimotoGPSurrogate().fit(x[labelled], truth[labelled]).predict(x[test])[0]
    assert err < 0.4 * np.abs(prior[test] - truth[test]).mean()  # offset learnt from 15 labels
    assert err < 0.4 * np.abs(plain - truth[test]).mean()  # and far better than no prior
    assert 0.75 < np.mean(np.abs(mean - truth[test]) <= 1.645 * std) <= 1.0
    # designs the prior does not know fall back to the prior's mean, and NaN priors are dropped
    unknown = np.zeros((1, 200))
    unknown[0, :3] = 1
    with_nan = np.where(np.arange(300) == 20, np.nan, prior)
    refit = PriorGPSurrogate().fit(x[labelled], truth[labelled], prior_x=x, prior_values=with_nan)
    assert np.isfinite(refit.predict(np.concatenate([unknown, x[20:21]]))[0]).all()


def test_gp_restored_from_its_state_predicts_alike_without_fitting() -> None:
    x, y = _fingerprints()
    gp = TanimotoGPSurrogate().fit(x[:12], y[:12])
    restored = TanimotoGPSurrogate().restore(x[:12], y[:12], gp.state_dict())
    for a, b in zip(gp.predict(x[12:]), restored.predict(x[12:]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    with pytest.raises(ValueError, match="not the state of a Tanimoto GP"):
        TanimotoGPSurrogate().restore(x[:12], y[:12], {"nonsense": torch.zeros(1)})
