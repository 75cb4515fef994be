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
