from __future__ import annotations

import numpy as np

from pipeline.acquisition import (
    GreedyAcquisition,
    MaxMinAcquisition,
    QLogNEIAcquisition,
    RandomAcquisition,
)
from pipeline.objectives import Objective
from pipeline.surrogates import TanimotoGPSurrogate

WINDOW = Objective(property="gap_ev", goal="window", low=4.5, high=5.5)


def _family(bits: slice, n: int, rng: np.random.Generator) -> np.ndarray:
    rows = np.zeros((n, 48))
    rows[:, bits] = 1
    rows[rng.random(rows.shape) < 0.04] = 1
    return rows


def _pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three fingerprint families whose values are 2, 5 (in the window) and 8."""
    rng = np.random.default_rng(1)
    fams = [_family(slice(0, 12), 6, rng), _family(slice(16, 28), 6, rng),
            _family(slice(32, 44), 6, rng)]
    values = [2.0, 5.0, 8.0]
    x_train = np.vstack([f[:3] for f in fams])
    y_train = np.concatenate([np.full(3, v) for v in values])
    x_pool = np.vstack([f[3:] for f in fams])
    return x_train, y_train, x_pool


def test_random_and_maxmin_pick_distinct_rows() -> None:
    _, _, pool = _pool()
    for acq in (RandomAcquisition(), MaxMinAcquisition()):
        picks = acq.select(pool, 4, objective=WINDOW, seed=0).indices
        assert len(set(picks)) == 4


def test_maxmin_spreads_its_picks_over_the_families() -> None:
    _, _, pool = _pool()
    picks = MaxMinAcquisition().select(pool, 3, objective=WINDOW, seed=0).indices
    assert sorted(i // 3 for i in picks) == [0, 1, 2]


def test_model_based_acquisitions_go_for_the_family_inside_the_window() -> None:
    x_train, y_train, pool = _pool()
    gp = TanimotoGPSurrogate().fit(x_train, y_train)
    for acq in (QLogNEIAcquisition(QLogNEIAcquisition.Params(mc_samples=64)),
                GreedyAcquisition()):
        sel = acq.select(pool, 2, objective=WINDOW, seed=0, surrogate=gp, x_train=x_train)
        assert len(set(sel.indices)) == 2
        assert 3 <= sel.indices[0] < 6, (acq, sel)
    greedy = GreedyAcquisition().select(pool, 3, objective=WINDOW, seed=0, surrogate=gp)
    assert sorted(greedy.indices) == [3, 4, 5]


def _max_pairwise_similarity(x: np.ndarray, picks: tuple[int, ...]) -> float:
    import torch

    from pipeline.surrogates import TanimotoKernel

    rows = torch.as_tensor(x[list(picks)])
    sim = TanimotoKernel().forward(rows, rows).numpy()
    np.fill_diagonal(sim, 0.0)
    return float(sim.max())


def test_diversity_safeguard_keeps_near_copies_out_of_one_batch() -> None:
    x_train, y_train, pool = _pool()  # three near-identical rows per family in the pool
    gp = TanimotoGPSurrogate().fit(x_train, y_train)
    plain = GreedyAcquisition().select(pool, 3, objective=WINDOW, seed=0, surrogate=gp)
    assert sorted(plain.indices) == [3, 4, 5]  # without the guard: three near-copies
    assert _max_pairwise_similarity(pool, plain.indices) > 0.7
    for acq in (GreedyAcquisition(GreedyAcquisition.Params(max_similarity=0.7)),
                QLogNEIAcquisition(QLogNEIAcquisition.Params(mc_samples=64, max_similarity=0.7))):
        sel = acq.select(pool, 3, objective=WINDOW, seed=0, surrogate=gp, x_train=x_train)
        assert len(set(sel.indices)) == 3
        assert 3 <= sel.indices[0] < 6  # the best family still comes first
        assert _max_pairwise_similarity(pool, sel.indices) <= 0.7, (acq, sel)


def test_diversity_safeguard_fills_the_batch_when_the_pool_is_uniform() -> None:
    x_train, y_train, pool = _pool()
    family = pool[3:6]
    gp = TanimotoGPSurrogate().fit(x_train, y_train)
    acq = QLogNEIAcquisition(QLogNEIAcquisition.Params(mc_samples=64, max_similarity=0.5))
    sel = acq.select(family, 3, objective=WINDOW, seed=0, surrogate=gp, x_train=x_train)
    assert sorted(sel.indices) == [0, 1, 2]


def test_outcome_constraints_steer_picks_to_feasible_candidates() -> None:
    from pipeline.objectives import Constraint

    x_train, y_train, pool = _pool()
    gap = np.where(y_train > 6, 5.6, y_train)  # families valued 2, 5 and 5.6
    dipole = np.where(y_train > 6, 10.0, 0.0)  # the best family breaks the constraint
    gap_gp = TanimotoGPSurrogate().fit(x_train, gap)
    dipole_gp = TanimotoGPSurrogate().fit(x_train, dipole)
    maximize = Objective(property="gap_ev", goal="maximize")
    constraint = Constraint(property="dipole_debye", max=5.0)
    for acq in (GreedyAcquisition(),
                QLogNEIAcquisition(QLogNEIAcquisition.Params(mc_samples=64))):
        free = acq.select(pool, 1, objective=maximize, seed=0, surrogate=gap_gp, x_train=x_train)
        assert 6 <= free.indices[0] < 9, acq  # unconstrained: the family valued 5.6
        bound = acq.select(pool, 1, objective=maximize, seed=0, surrogate=gap_gp,
                           x_train=x_train, constraints=[(constraint, dipole_gp)])
        assert 3 <= bound.indices[0] < 6, acq  # constrained: the best feasible family


def test_qlognehvi_picks_the_pareto_optimal_families() -> None:
    from pipeline.acquisition import QLogNEHVIAcquisition

    x_train, y_train, pool = _pool()
    # two objectives to maximise: (2, 2) is dominated, (5, 8) and (8, 5) are both optimal
    first = y_train.copy()
    second = np.select([y_train < 3, y_train < 6], [2.0, 8.0], 5.0)
    gp1 = TanimotoGPSurrogate().fit(x_train, first)
    gp2 = TanimotoGPSurrogate().fit(x_train, second)
    up1 = Objective(property="a", goal="maximize")
    up2 = Objective(property="b", goal="maximize")
    acq = QLogNEHVIAcquisition(QLogNEHVIAcquisition.Params(mc_samples=64))
    sel = acq.select(pool, 2, objective=up1, seed=0, surrogate=gp1, x_train=x_train,
                     pareto=[(up2, gp2)])
    assert sorted(i // 3 for i in sel.indices) == [1, 2]
    assert "max_similarity=0.7" in repr(acq)


def test_non_dominated_rows() -> None:
    from pipeline.ranking import non_dominated

    scores = np.array([[1.0, 5.0], [5.0, 1.0], [0.5, 0.5], [3.0, 3.0], [3.0, 3.0]])
    assert non_dominated(scores).tolist() == [True, True, False, True, True]


def test_prescreen_keeps_the_best_rows_and_maps_picks_back_to_the_pool() -> None:
    x_train, y_train, pool = _pool()
    gp = TanimotoGPSurrogate().fit(x_train, y_train)
    full = QLogNEIAcquisition(QLogNEIAcquisition.Params(mc_samples=64))
    screened = QLogNEIAcquisition(QLogNEIAcquisition.Params(mc_samples=64, prescreen=1))
    a = full.select(pool, 1, objective=WINDOW, seed=0, surrogate=gp, x_train=x_train)
    # 9 rows are fewer than the floor of 10 q rows: the whole pool is used
    b = screened.select(pool, 1, objective=WINDOW, seed=0, surrogate=gp, x_train=x_train)
    assert a.indices == b.indices
    big = np.vstack([pool] * 3)  # 27 rows > 10 q: the prescreen runs
    c = screened.select(big, 2, objective=WINDOW, seed=0, surrogate=gp, x_train=x_train)
    assert 3 <= c.indices[0] % 9 < 6 and len(set(c.indices)) == 2


def _cheap_and_trusted(correlated: bool) -> object:
    from pipeline.surrogates import MultiFidelityGPSurrogate

    rng = np.random.default_rng(2)
    x = (rng.random((90, 48)) < 0.15).astype(float)
    truth = x @ rng.normal(size=48)
    cheap = truth + 0.5 if correlated else x @ rng.normal(size=48)
    rows = np.concatenate([x[:60], x[:25]])
    values = np.concatenate([cheap[:60], truth[:25]])
    levels = np.concatenate([np.zeros(60, dtype=int), np.ones(25, dtype=int)])
    return MultiFidelityGPSurrogate().fit(rows, values, fidelity=levels), x[60:]


def test_information_per_cost_prefers_a_cheap_fidelity_only_when_it_tracks_the_target() -> None:
    from pipeline.acquisition import information_per_cost

    for correlated, expected in ((True, 0), (False, 1)):
        surrogate, pool = _cheap_and_trusted(correlated)
        value = information_per_cost(surrogate, pool, tasks=[0, 1], costs=[1.0, 4.0])
        assert value.shape == (len(pool), 2) and np.all(value >= 0)
        assert np.mean(np.argmax(value, axis=1) == expected) > 0.9, (correlated, value[:3])
        # the target's own share of variance is at most 1 per unit cost
        assert np.all(value[:, 1] <= 1.0 / 4.0 + 1e-9)
