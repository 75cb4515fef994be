"""Acquisition: pick the batch of q candidates worth an oracle call from the filtered pool."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.models import ModelListGP
from botorch.optim import optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler
from pydantic import BaseModel, ConfigDict, Field

from pipeline.objectives import Constraint, Objective
from pipeline.registry import ACQUISITIONS
from pipeline.surrogates import TanimotoKernel


@dataclass(frozen=True, slots=True)
class Selection:
    """A picked batch.

    Attributes:
        indices: rows of the pool, in the order they were picked (q,).
        values: acquisition value of each pick where the method has one, else NaN (q,).
    """

    indices: tuple[int, ...]
    values: tuple[float, ...]


class Acquisition(Protocol):
    """Picks q rows of a pool."""

    needs_surrogate: bool

    def select(
        self,
        x_pool: npt.NDArray[np.float64],
        q: int,
        *,
        objective: Objective,
        seed: int,
        surrogate: object | None = None,
        x_train: npt.NDArray[np.float64] | None = None,
        constraints: Sequence[tuple[Constraint, object]] = (),
        pareto: Sequence[tuple[Objective, object]] = (),
    ) -> Selection:
        """Returns q distinct pool rows.

        Args:
            x_pool: features of the pool, shape (n_pool, d).
            q: batch size, at most n_pool.
            objective: what the campaign asks for.
            seed: seed for any randomness.
            surrogate: the fitted surrogate of the objective's property (when needed).
            x_train: features of the labelled designs, shape (n_train, d) (when needed).
            constraints: outcome constraints with the fitted surrogate of each one's property;
                model-free acquisitions ignore them.
            pareto: further objectives with their surrogates; only multi-objective
                acquisitions (``multi_objective = True``) use them.
        """
        ...


def _check_q(x_pool: npt.NDArray[np.float64], q: int) -> int:
    if q < 1:
        raise ValueError(f"batch size q must be >= 1, got {q}")
    return min(q, x_pool.shape[0])


@ACQUISITIONS.register("random")
class RandomAcquisition:
    """Uniform random picks: the baseline every other acquisition must beat."""

    needs_surrogate = False

    def __repr__(self) -> str:
        return "RandomAcquisition()"

    def select(self, x_pool, q, *, objective, seed, surrogate=None, x_train=None,
               constraints=(), pareto=()):
        """See :class:`Acquisition`."""
        q = _check_q(x_pool, q)
        picks = np.random.default_rng(seed).choice(x_pool.shape[0], size=q, replace=False)
        return Selection(tuple(int(i) for i in picks), (float("nan"),) * q)


@ACQUISITIONS.register("maxmin")
class MaxMinAcquisition:
    """Diverse picks by greedy max-min Tanimoto distance; the initial design before any labels.

    The first pick is random (seeded); each next pick is the pool row farthest from all picks so far.
    """

    needs_surrogate = False

    def __repr__(self) -> str:
        return "MaxMinAcquisition()"

    def select(self, x_pool, q, *, objective, seed, surrogate=None, x_train=None,
               constraints=(), pareto=()):
        """See :class:`Acquisition`; ``x_train`` rows, when given, count as already picked."""
        q = _check_q(x_pool, q)
        x = torch.as_tensor(x_pool, dtype=torch.float64)
        kernel = TanimotoKernel()
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            if x_train is not None and len(x_train):
                sim = kernel.forward(x, torch.as_tensor(x_train, dtype=torch.float64))
                nearest = sim.max(dim=1).values
                picks: list[int] = []
            else:
                first = int(rng.integers(x.shape[0]))
                picks = [first]
                nearest = kernel.forward(x, x[first : first + 1]).squeeze(-1)
            values: list[float] = [float("nan")] * len(picks)
            while len(picks) < q:
                distance = 1.0 - nearest
                distance[picks] = -1.0
                nxt = int(torch.argmax(distance))
                picks.append(nxt)
                values.append(float(distance[nxt]))
                nearest = torch.maximum(nearest, kernel.forward(x, x[nxt : nxt + 1]).squeeze(-1))
        return Selection(tuple(picks), tuple(values))


@ACQUISITIONS.register("greedy")
class GreedyAcquisition:
    """The q pool rows whose predicted mean scores best: pure exploitation.

    With ``max_similarity`` set, a row more similar than that to an earlier pick is skipped.
    """

    needs_surrogate = True

    class Params(BaseModel):
        """Settings of greedy selection.

        Attributes:
            max_similarity: diversity safeguard, see :class:`QLogNEIAcquisition`.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        max_similarity: float | None = Field(default=None, gt=0.0, le=1.0)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()

    def __repr__(self) -> str:
        return f"GreedyAcquisition(max_similarity={self.params.max_similarity})"

    def select(self, x_pool, q, *, objective, seed, surrogate=None, x_train=None,
               constraints=(), pareto=()):
        """See :class:`Acquisition`."""
        if surrogate is None:
            raise ValueError("greedy acquisition needs a fitted surrogate")
        q = _check_q(x_pool, q)
        mean, _ = surrogate.predict(x_pool)
        score = objective.score(mean)
        violations = np.zeros(len(score), dtype=int)
        for constraint, model in constraints:  # rows predicted to break more bounds go later
            violations += ~constraint.satisfied(model.predict(x_pool)[0])
        ranking = np.lexsort((-score, violations))
        guard = _DiversityGuard(x_pool, self.params.max_similarity)
        order: list[int] = []
        for i in ranking:
            if guard.allows(int(i)):
                order.append(int(i))
                guard.add(int(i))
            if len(order) == q:
                break
        for i in ranking:  # pool too uniform: fill up regardless
            if len(order) == q:
                break
            if int(i) not in order:
                order.append(int(i))
        return Selection(tuple(order), tuple(float(score[i]) for i in order))


class _DiversityGuard:
    """Tracks which pool rows are still dissimilar enough (Tanimoto) to every pick so far.

    Args:
        x_pool: pool features, shape (n_pool, d), non-negative (fingerprints).
        max_similarity: a row whose Tanimoto similarity to a pick exceeds this is excluded;
            None turns the guard off.
    """

    def __init__(self, x_pool: npt.NDArray[np.float64], max_similarity: float | None) -> None:
        self.x = torch.as_tensor(x_pool, dtype=torch.float64)
        self.max_similarity = max_similarity
        self.allowed = torch.ones(self.x.shape[0], dtype=torch.bool)
        self.picked: list[int] = []

    def allows(self, i: int) -> bool:
        """Whether row ``i`` may join the batch."""
        return bool(self.allowed[i]) and i not in self.picked

    def add(self, i: int) -> None:
        """Records a pick and excludes the rows too similar to it."""
        self.picked.append(i)
        self.allowed[i] = False
        if self.max_similarity is not None:
            with torch.no_grad():
                sim = TanimotoKernel().forward(self.x, self.x[i : i + 1]).squeeze(-1)
            self.allowed &= sim <= self.max_similarity

    def candidates(self) -> torch.Tensor:
        """Rows still allowed; when none is left, every row not yet picked."""
        rows = torch.nonzero(self.allowed).flatten()
        if rows.numel() == 0:
            mask = torch.ones(self.x.shape[0], dtype=torch.bool)
            mask[self.picked] = False
            rows = torch.nonzero(mask).flatten()
        return rows


def _objective_of_first_output(
    objective: Objective,
) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """BoTorch MC objective: the objective score of the first model output."""

    def score(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
        return objective.score_torch(samples[..., 0])

    return score


def _constraint_slack(
    constraint: Constraint, output: int, bound: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """BoTorch outcome constraint (<= 0 when met) of one bound on one model output."""

    def slack(samples: torch.Tensor) -> torch.Tensor:
        return constraint.slacks(samples[..., output])[bound]

    return slack


def _outcome_constraints(
    constraints: Sequence[tuple[Constraint, object]], first_output: int
) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """One BoTorch outcome constraint per bound; constraint k is model output first_output + k."""
    return [
        _constraint_slack(constraint, first_output + k, bound)
        for k, (constraint, _) in enumerate(constraints)
        for bound in range(len(constraint.slacks(torch.zeros(1))))
    ]


class _SequentialParams(BaseModel):
    """Settings shared by the sequential Monte Carlo acquisitions.

    Attributes:
        mc_samples: quasi-Monte Carlo samples of the posterior (16 to 4096).
        max_batch_size: pool rows scored per forward pass (memory bound).
        max_similarity: largest Tanimoto similarity of a pick to an earlier pick of the same
            batch (None: no diversity safeguard).
        prescreen: for large pools, run the sequential picks only on this many rows (at least
            10 q) of highest single-point value (None: on the whole pool). The joint
            Monte Carlo acquisition costs about (pruned baseline) x (training set) kernel
            evaluations per pool row and pick, minutes per round for thousands of rows; the
            screen costs one posterior per row.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    mc_samples: int = Field(default=256, ge=16, le=4096)
    max_batch_size: int = Field(default=256, ge=1, le=100_000)
    max_similarity: float | None = Field(default=0.7, gt=0.0, le=1.0)
    prescreen: int | None = Field(default=256, ge=1, le=10_000_000)


@ACQUISITIONS.register("qlognei")
class QLogNEIAcquisition:
    """BoTorch qLogNoisyExpectedImprovement of the objective score over a discrete pool.

    The objective (maximise, minimise or window score, see :mod:`pipeline.objectives`) is applied to
    posterior samples of the property, so the window's non-linearity is handled exactly; outcome
    constraints weigh each candidate by its posterior probability of meeting them. The batch
    is built by sequential greedy selection (``optimize_acqf_discrete``): each pick maximises the
    acquisition given the earlier picks as pending points. Diversity safeguard: after each pick,
    pool rows whose Tanimoto similarity to it exceeds ``max_similarity`` are excluded, so a batch
    is never q near-copies (if the pool runs out of dissimilar rows, the rest is filled without
    the guard).
    """

    needs_surrogate = True

    class Params(_SequentialParams):
        """Settings of qLogNEI; see :class:`_SequentialParams`."""

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()

    def __repr__(self) -> str:
        return (f"QLogNEIAcquisition(mc_samples={self.params.mc_samples}, "
                f"max_similarity={self.params.max_similarity})")

    def select(self, x_pool, q, *, objective, seed, surrogate=None, x_train=None,
               constraints=(), pareto=()):
        """See :class:`Acquisition`."""
        if surrogate is None or x_train is None:
            raise ValueError("qlognei needs a fitted surrogate and its training features")
        q = _check_q(x_pool, q)
        sampler = SobolQMCNormalSampler(torch.Size([self.params.mc_samples]), seed=seed)
        model = surrogate.model
        if constraints:
            model = ModelListGP(surrogate.model, *(s.model for _, s in constraints))
        outcome_constraints = _outcome_constraints(constraints, first_output=1)
        acq = qLogNoisyExpectedImprovement(
            model=model,
            X_baseline=torch.as_tensor(x_train, dtype=torch.float64),
            sampler=sampler,
            objective=GenericMCObjective(_objective_of_first_output(objective)),
            constraints=outcome_constraints or None,
            prune_baseline=True,
        )
        keep = None
        if self.params.prescreen is not None and x_pool.shape[0] > max(self.params.prescreen,
                                                                        10 * q):
            value = expected_improvement_screen(x_pool, objective, surrogate, x_train,
                                                constraints)
            keep = np.argsort(-value, kind="stable")[: max(self.params.prescreen, 10 * q)]
        return _sequential_picks(acq, x_pool, q, self.params.max_similarity,
                                 self.params.max_batch_size, keep=keep)


def expected_improvement_screen(
    x_pool: npt.NDArray[np.float64], objective: Objective, surrogate: Any,
    x_train: npt.NDArray[np.float64], constraints: Sequence[tuple[Constraint, Any]] = (),
    n_quantiles: int = 64,
) -> npt.NDArray[np.float64]:
    """Single-point expected improvement of the objective score, times the probability of
    meeting the constraints, from each row's marginal posterior: a cheap screen of large pools.

    The incumbent is the best predicted score among the labelled designs. The expectation over
    the (possibly non-linear, for a window) score uses ``n_quantiles`` evenly spaced normal
    quantiles, so it is deterministic.

    Args:
        x_pool: pool features, shape (n_pool, d).
        objective: the campaign's objective.
        surrogate: fitted surrogate of the objective's property (``predict``).
        x_train: labelled features, shape (n_train, d).
        constraints: outcome constraints with their fitted surrogates.
        n_quantiles: quadrature points of the normal.

    Returns:
        Screen values, shape (n_pool,), higher is better.
    """
    from scipy.stats import norm

    u = torch.as_tensor(norm.ppf((np.arange(n_quantiles) + 0.5) / n_quantiles))
    incumbent = float(np.max(objective.score(surrogate.predict(x_train)[0])))
    mean, std = (torch.as_tensor(a) for a in surrogate.predict(x_pool))
    samples = mean[:, None] + std[:, None] * u[None, :]
    value = (objective.score_torch(samples) - incumbent).clamp_min(0).mean(-1).numpy()
    # rows with no expected improvement keep their order by how close they come
    value = value + 1e-12 * np.exp(np.clip(objective.score(mean.numpy()) - incumbent, -50, 0))
    for constraint, model in constraints:
        c_mean, c_std = model.predict(x_pool)
        c_samples = c_mean[:, None] + np.maximum(c_std, 1e-12)[:, None] * u.numpy()[None, :]
        value = value * constraint.satisfied(c_samples).mean(-1)
    return np.asarray(value, dtype=np.float64)


def _sequential_picks(acq: Any, x_pool: npt.NDArray[np.float64], q: int,
                      max_similarity: float | None, max_batch_size: int,
                      prescreen: int | None = None,
                      keep: npt.NDArray[np.int64] | None = None) -> Selection:
    """Sequential greedy batch: each pick maximises ``acq`` given the earlier picks as pending
    points, among the pool rows the diversity guard still allows.

    The picks run on the rows ``keep`` when given; else, with ``prescreen``, on the
    ``max(prescreen, 10 q)`` rows of highest single-point value of ``acq`` itself (one pass).
    """
    if keep is None and prescreen is not None and x_pool.shape[0] > max(prescreen, 10 * q):
        keep = _top_single_point(acq, x_pool, max(prescreen, 10 * q), max_batch_size)
    if keep is not None:
        sub = _sequential_picks(acq, x_pool[keep], q, max_similarity, max_batch_size)
        return Selection(tuple(int(keep[i]) for i in sub.indices), sub.values)
    choices = torch.as_tensor(x_pool, dtype=torch.float64)
    guard = _DiversityGuard(x_pool, max_similarity)
    values: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(q):
            acq.set_X_pending(choices[guard.picked] if guard.picked else None)
            rows = guard.candidates()
            best, value = optimize_acqf_discrete(acq, q=1, choices=choices[rows],
                                                 max_batch_size=max_batch_size)
            same = rows[(choices[rows] == best[0]).all(dim=1)]
            guard.add(int(same[0]))
            values.append(float(value))
    return Selection(tuple(guard.picked), tuple(values))


def _top_single_point(acq: Any, x_pool: npt.NDArray[np.float64], k: int,
                      max_batch_size: int) -> npt.NDArray[np.int64]:
    """Indices of the ``k`` pool rows with the highest acquisition value on their own."""
    choices = torch.as_tensor(x_pool, dtype=torch.float64).unsqueeze(-2)
    acq.set_X_pending(None)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        values = torch.cat([acq(chunk) for chunk in torch.split(choices, max_batch_size)])
    return np.argsort(-values.numpy(), kind="stable")[:k].astype(np.int64)


@ACQUISITIONS.register("qlognehvi")
class QLogNEHVIAcquisition:
    """BoTorch qLogNoisyExpectedHypervolumeImprovement over the objective and ``pareto_with``.

    Use it when the campaign trades several targets off against each other: it picks candidates
    expected to push the Pareto front of the objective scores outwards. The reference point is
    each score's worst observed value less 10 % of its observed range. Outcome constraints and
    the diversity safeguard work as in :class:`QLogNEIAcquisition`.
    """

    needs_surrogate = True
    multi_objective = True

    class Params(_SequentialParams):
        """Settings of qLogNEHVI; see :class:`_SequentialParams` (fewer samples by default:
        hypervolume improvement costs more per sample)."""

        mc_samples: int = Field(default=128, ge=16, le=4096)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()

    def __repr__(self) -> str:
        return (f"QLogNEHVIAcquisition(mc_samples={self.params.mc_samples}, "
                f"max_similarity={self.params.max_similarity})")

    def select(self, x_pool, q, *, objective, seed, surrogate=None, x_train=None,
               constraints=(), pareto=()):
        """See :class:`Acquisition`; needs at least one ``pareto`` objective."""
        if surrogate is None or x_train is None:
            raise ValueError("qlognehvi needs fitted surrogates and their training features")
        if not pareto:
            raise ValueError("qlognehvi needs further objectives (config: pareto_with)")
        q = _check_q(x_pool, q)
        objectives = [objective, *(o for o, _ in pareto)]
        models = [surrogate, *(s for _, s in pareto)]
        n_obj = len(objectives)
        x_base = torch.as_tensor(x_train, dtype=torch.float64)
        with torch.no_grad():
            means = torch.stack([torch.as_tensor(m.predict(x_train)[0]) for m in models], -1)
        scores = torch.stack([o.score_torch(means[:, k]) for k, o in enumerate(objectives)], -1)
        span = (scores.max(0).values - scores.min(0).values).clamp_min(1e-6)
        ref_point = scores.min(0).values - 0.1 * span
        model = ModelListGP(*(m.model for m in models), *(s.model for _, s in constraints))
        outcome_constraints = _outcome_constraints(constraints, first_output=n_obj)

        def score_all(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
            return torch.stack([o.score_torch(samples[..., k]) for k, o in enumerate(objectives)],
                               dim=-1)

        acq = qLogNoisyExpectedHypervolumeImprovement(
            model=model, ref_point=ref_point, X_baseline=x_base,
            sampler=SobolQMCNormalSampler(torch.Size([self.params.mc_samples]), seed=seed),
            objective=GenericMCMultiOutputObjective(score_all),
            constraints=outcome_constraints or None, prune_baseline=True,
        )
        return _sequential_picks(acq, x_pool, q, self.params.max_similarity,
                                 self.params.max_batch_size, self.params.prescreen)


def information_per_cost(
    surrogate: Any, x: npt.NDArray[np.float64], tasks: Sequence[int], costs: Sequence[float]
) -> npt.NDArray[np.float64]:
    """Value of one result at each fidelity for learning the most trusted one, per unit cost.

    For a design x and a fidelity f, the share of the posterior variance of the target
    fidelity t at x that one noisy result at (x, f) removes,
    cov(t, f)^2 / (var(t) (var(f) + noise(f))), divided by the cost of f. It is 1 / cost for
    a noise-free result at the target itself and falls with the correlation of f and t.

    Args:
        surrogate: a fitted multi-fidelity surrogate (``multi_task`` true; its ``model``
            takes the fidelity level as a last input column and ``target_level`` is t).
        x: designs, shape (n, d).
        tasks: the model's level of each candidate fidelity, (k,).
        costs: the cost of each, (k,), > 0.

    Returns:
        Shape (n, k).
    """
    model = surrogate.model
    levels = torch.tensor([*tasks, int(surrogate.target_level)], dtype=torch.float64)
    out = np.zeros((x.shape[0], len(tasks)))
    for i, row in enumerate(torch.as_tensor(x, dtype=torch.float64)):
        rows = torch.cat([row.expand(len(levels), -1), levels[:, None]], dim=-1)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cov = model.posterior(rows).mvn.covariance_matrix.numpy()
            noisy = model.posterior(rows, observation_noise=True).mvn.covariance_matrix.numpy()
        var_t = max(float(cov[-1, -1]), 1e-12)
        share = cov[:-1, -1] ** 2 / (var_t * np.maximum(np.diag(noisy)[:-1], 1e-12))
        out[i] = share / np.asarray(costs, dtype=np.float64)
    return out
