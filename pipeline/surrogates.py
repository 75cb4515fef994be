"""Surrogate property models fitted on a campaign's own oracle results."""

from __future__ import annotations

import math
import warnings
from typing import Any, Self, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms.outcome import Standardize
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import Kernel, ScaleKernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.means import Mean
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from pydantic import BaseModel, ConfigDict, Field

from pipeline.registry import SURROGATES


class TanimotoKernel(Kernel):
    """Tanimoto (Jaccard) similarity of non-negative vectors, a valid kernel on fingerprints.

    k(x, x') = <x, x'> / (|x|^2 + |x'|^2 - <x, x'>), which is 1 for identical fingerprints and 0
    for fingerprints with no bit in common. It has no lengthscale; wrap it in a ``ScaleKernel``.
    """

    has_lengthscale = False

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params: Any
    ) -> torch.Tensor:
        """Kernel matrix.

        Args:
            x1: ``batch x n x d`` fingerprints.
            x2: ``batch x m x d`` fingerprints.
            diag: return only the diagonal (``batch x n``).

        Returns:
            ``batch x n x m`` similarities (``batch x n`` when ``diag``).
        """
        if diag:
            dot = (x1 * x2).sum(-1)
            norm = (x1 * x1).sum(-1) + (x2 * x2).sum(-1) - dot
            return torch.where(norm > 0, dot / norm.clamp_min(1e-12), torch.ones_like(dot))
        dot = x1 @ x2.transpose(-2, -1)
        n1 = (x1 * x1).sum(-1, keepdim=True)
        n2 = (x2 * x2).sum(-1, keepdim=True).transpose(-2, -1)
        norm = n1 + n2 - dot
        return torch.where(norm > 0, dot / norm.clamp_min(1e-12), torch.ones_like(dot))


def _predict_noisy(
    model: Model, x: torch.Tensor
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean and standard deviation (observation noise included), each (n,), of a single-output
    BoTorch model at inputs x (n, d), in chunks of 1,024 rows."""
    means, stds = [], []
    with torch.no_grad():
        for chunk in torch.split(x, 1024):
            posterior: Any = model.posterior(chunk, observation_noise=True)
            means.append(posterior.mean.reshape(-1))
            stds.append(posterior.variance.clamp_min(0).sqrt().reshape(-1))
    return torch.cat(means).numpy(), torch.cat(stds).numpy()


_M = TypeVar("_M", bound=Model)


def _fitted(model: _M) -> _M:
    """The model with its hyperparameters fitted by maximum marginal likelihood, in eval mode."""
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(mll)
    model.eval()
    return model


@SURROGATES.register("tanimoto_gp")
class TanimotoGPSurrogate:
    """Exact GP with a Tanimoto kernel on fingerprints (BoTorch ``SingleTaskGP``).

    Use it while labels are few (up to a few thousand): it is fitted from scratch in seconds and
    its uncertainty is well behaved far from the data. Do not use it on real-valued descriptors;
    the Tanimoto kernel assumes non-negative features such as fingerprint bits or counts.

    Outputs are standardised; the signal variance has a LogNormal(0, 1) prior and the noise
    variance a LogNormal(log 0.05, 1) prior (oracle values are nearly noise-free). Without priors,
    maximum likelihood on a handful of diverse molecules explains everything as noise and
    predicts the mean everywhere.
    """

    class Params(BaseModel):
        """Settings of the Tanimoto GP.

        Attributes:
            min_noise: lower bound on the observation noise variance, in standardised units.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        min_noise: float = Field(default=1e-4, gt=0, le=1.0)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self._model: SingleTaskGP | None = None

    def __repr__(self) -> str:
        return f"TanimotoGPSurrogate(min_noise={self.params.min_noise})"

    def fit(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
            mean_module: Mean | None = None) -> Self:
        """Fits hyperparameters by maximising the marginal likelihood.

        Args:
            x: features, shape (n, d), non-negative.
            y: targets, shape (n,), finite.
            mean_module: prior mean in standardised units (default: a constant).
        """
        self._model = _fitted(self._build(x, y, mean_module))
        return self

    def restore(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
                state: dict[str, torch.Tensor]) -> Self:
        """The GP of an earlier :meth:`fit` on the same ``x`` and ``y``, from its
        :meth:`state_dict`, without fitting again (the same predictions).

        Raises:
            ValueError: ``x`` or ``y`` are not a training set, or the state is not this GP's.
        """
        model = self._build(x, y, None)
        try:
            model.load_state_dict(state)
        except (RuntimeError, KeyError) as exc:
            raise ValueError(f"not the state of a Tanimoto GP: {exc}") from None
        model.eval()
        self._model = model
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted hyperparameters and output standardisation (for :meth:`restore`)."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _build(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
               mean_module: Mean | None) -> SingleTaskGP:
        x_t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        y_t = torch.as_tensor(np.asarray(y), dtype=torch.float64).reshape(-1, 1)
        if x_t.shape[0] != y_t.shape[0] or x_t.ndim != 2:
            raise ValueError(f"fit needs x (n, d) and y (n,), got {tuple(x_t.shape)} and "
                             f"{tuple(y_t.shape)}")
        if x_t.shape[0] < 2:
            raise ValueError(f"fit needs at least 2 labelled points, got {x_t.shape[0]}")
        if not torch.isfinite(y_t).all():
            raise ValueError("fit targets must be finite (drop failed oracle results first)")
        likelihood = GaussianLikelihood(
            noise_prior=LogNormalPrior(math.log(0.05), 1.0),
            noise_constraint=GreaterThan(self.params.min_noise),
        )
        kernel = ScaleKernel(TanimotoKernel(), outputscale_prior=LogNormalPrior(0.0, 1.0))
        return SingleTaskGP(
            x_t, y_t, likelihood=likelihood, covar_module=kernel, mean_module=mean_module,
            outcome_transform=Standardize(m=1),
        )

    @property
    def model(self) -> Model:
        """The fitted BoTorch model, for acquisition functions."""
        if self._model is None:
            raise RuntimeError("TanimotoGPSurrogate is not fitted; call fit() first")
        return self._model

    def predict(
        self, x: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Predictive mean and standard deviation of new observations (noise included).

        Args:
            x: features, shape (n, d).

        Returns:
            Mean and standard deviation, each shape (n,), in the unit of the targets.
        """
        return _predict_noisy(self.model, torch.as_tensor(np.asarray(x), dtype=torch.float64))


@SURROGATES.register("multifidelity_gp")
class MultiFidelityGPSurrogate:
    """Multi-task GP over fidelities: a Tanimoto kernel on fingerprints times a task kernel.

    Each training row carries a fidelity level (0 = least trusted, for example a fast DFT level;
    the highest = most trusted, for example the lab). The model is BoTorch's ``MultiTaskGP``:
    k((x, s), (x', t)) = k_Tanimoto(x, x') B[s, t] with a low-rank positive task covariance B, a
    constant mean and a noise variance per fidelity. It learns from the cheap results how
    molecules differ and from the molecules measured at several fidelities how the fidelities
    relate (correlation and offset), and it predicts at the most trusted fidelity present, so
    the first lab results shift every prediction towards the lab, and they count most where
    they were taken. With a single fidelity it is the :class:`TanimotoGPSurrogate`.
    """

    multi_fidelity = True

    class Params(BaseModel):
        """Settings of the multi-fidelity GP.

        Attributes:
            min_noise: lower bound on each fidelity's noise variance (standardised units).
            rank: rank of the task covariance (None: full rank).
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        min_noise: float = Field(default=1e-4, gt=0, le=1.0)
        rank: int | None = Field(default=None, ge=1, le=16)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self._model: Model | None = None
        self._single: TanimotoGPSurrogate | None = None
        self.target_level: int | None = None

    def __repr__(self) -> str:
        return f"MultiFidelityGPSurrogate(rank={self.params.rank}, target={self.target_level})"

    def fit(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
            fidelity: npt.ArrayLike | None = None) -> Self:
        """Fits on results of several fidelities.

        Args:
            x: features, shape (n, d), non-negative; a design measured at two fidelities
                appears twice.
            y: targets, shape (n,), finite.
            fidelity: trust level of each row, shape (n,), integers >= 0 (higher is more
                trusted); None means one fidelity.
        """
        x = np.asarray(x, dtype=np.float64)
        levels = np.zeros(len(x), dtype=np.int64) if fidelity is None else np.asarray(fidelity)
        if levels.shape != (x.shape[0],) or not np.issubdtype(levels.dtype, np.integer):
            raise ValueError(f"fidelity must be integer levels, shape ({x.shape[0]},), got "
                             f"{levels.dtype} {levels.shape}")
        if (levels < 0).any():
            raise ValueError(f"fidelity levels must be >= 0, got {sorted(set(levels.tolist()))}")
        if x.shape[0] < 2:
            raise ValueError(f"fit needs at least 2 labelled points, got {x.shape[0]}")
        target = self.target_level = int(levels.max())
        if len(set(levels.tolist())) == 1:
            self._single = TanimotoGPSurrogate(
                TanimotoGPSurrogate.Params(min_noise=self.params.min_noise)).fit(x, y)
            self._model = self._single.model
            return self
        from botorch.models import MultiTaskGP

        y_t = torch.as_tensor(np.asarray(y), dtype=torch.float64).reshape(-1, 1)
        if not torch.isfinite(y_t).all():
            raise ValueError("fit targets must be finite (drop failed oracle results first)")
        x_t = torch.cat([torch.as_tensor(x), torch.as_tensor(levels, dtype=torch.float64)[:, None]],
                        dim=-1)
        data_kernel = ScaleKernel(TanimotoKernel(), outputscale_prior=LogNormalPrior(0.0, 1.0))
        model = MultiTaskGP(x_t, y_t, task_feature=-1, covar_module=data_kernel,
                            output_tasks=[target], rank=self.params.rank)
        model.likelihood.noise_covar.register_prior(
            "noise_prior_ln", LogNormalPrior(math.log(0.05), 1.0), "noise")
        model.likelihood.noise_covar.register_constraint("raw_noise",
                                                         GreaterThan(self.params.min_noise))
        self._single = None
        self._model = _fitted(model)
        return self

    @property
    def multi_task(self) -> bool:
        """Whether the fit saw several fidelities (a ``MultiTaskGP``; else a single-task GP)."""
        return self._model is not None and self._single is None

    @property
    def model(self) -> Model:
        """The fitted BoTorch model; its posterior is at the most trusted fidelity seen."""
        if self._model is None:
            raise RuntimeError("MultiFidelityGPSurrogate is not fitted; call fit() first")
        return self._model

    def predict(
        self, x: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Mean and standard deviation at the most trusted fidelity seen, each (n,), in the
        unit of the targets (observation noise of that fidelity included)."""
        if self._single is not None:
            return self._single.predict(x)
        x_t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        level = torch.full((x_t.shape[0], 1), float(self.target_level or 0), dtype=torch.float64)
        return _predict_noisy(self.model, torch.cat([x_t, level], dim=-1))


class _LookupPriorMean(Mean):
    """GP mean a * prior(x) + b, with prior(x) looked up from a table of known inputs.

    Rows are identified by an exact integer hash (x @ r with random integer weights r; exact in
    float64 for fingerprint bits or counts), so the lookup works inside any batch shape that
    BoTorch's acquisition functions use. Rows not in the table get the table's mean.

    Args:
        x_known: (m, d) features of the designs with a prior value.
        prior_known: (m,) their prior values, already in the model's (standardised) units.
    """

    def __init__(self, x_known: torch.Tensor, prior_known: torch.Tensor) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        weights = torch.randint(1, 2**20, (x_known.shape[-1],), generator=generator)
        self.register_buffer("hash_weights", weights.to(torch.float64))
        keys = x_known.to(torch.float64) @ self.hash_weights
        order = torch.argsort(keys)
        self.register_buffer("keys", keys[order])
        self.register_buffer("values", prior_known.to(torch.float64)[order])
        self.register_parameter("scale", torch.nn.Parameter(torch.ones(1, dtype=torch.float64)))
        self.register_parameter("offset", torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)))

    def lookup(self, x: torch.Tensor) -> torch.Tensor:
        """Prior values of rows x (..., d) -> (...)."""
        keys = x.to(torch.float64) @ self.hash_weights
        index = torch.searchsorted(self.keys, keys).clamp_max(self.keys.numel() - 1)
        found = self.keys[index] == keys
        return torch.where(found, self.values[index], self.values.mean())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean (...,) of inputs (..., d)."""
        return self.scale * self.lookup(x) + self.offset


@SURROGATES.register("prior_gp")
class PriorGPSurrogate:
    """Tanimoto GP around a pretrained model's predictions: y(x) = a prior(x) + b + g(x).

    The GP g learns the pretrained model's error on the campaign's own labels; the scale a
    and offset b are fitted with the kernel (by marginal likelihood, starting from a = 1,
    b = 0), so a prior from another level of theory is recalibrated. With few labels the
    predictions follow the pretrained model; as labels accumulate, the GP corrects it where
    it is wrong. Without prior values it is the :class:`TanimotoGPSurrogate`.
    """

    uses_prior = True

    class Params(BaseModel):
        """Settings of the prior GP.

        Attributes:
            min_noise: lower bound on the noise variance, in standardised units.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        min_noise: float = Field(default=1e-4, gt=0, le=1.0)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self._gp = TanimotoGPSurrogate(TanimotoGPSurrogate.Params(min_noise=self.params.min_noise))

    def __repr__(self) -> str:
        return f"PriorGPSurrogate(min_noise={self.params.min_noise})"

    def fit(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
            prior_x: npt.NDArray[np.float64] | None = None,
            prior_values: npt.NDArray[np.float64] | None = None) -> Self:
        """Fits the scale, offset and kernel.

        Args:
            x: labelled features, shape (n, d), non-negative integers (fingerprint bits or
                counts).
            y: targets, shape (n,), finite.
            prior_x: features of every design the prior predicts (labelled and pool),
                shape (m, d).
            prior_values: the prior's predictions for them, shape (m,), in the unit of y;
                NaN rows are dropped; when the prior predicts none (a crystal model asked about
                elements it never saw), the GP has a constant mean, as without a prior.
        """
        keep = np.isfinite(prior_values) if prior_values is not None else None
        if prior_x is None or prior_values is None or keep is None or not keep.any():
            self._gp.fit(x, y)
            return self
        y_arr = np.asarray(y, dtype=np.float64)
        mu, sigma = float(np.mean(y_arr)), float(np.std(y_arr)) or 1.0
        standardised = (np.asarray(prior_values)[keep] - mu) / sigma
        mean = _LookupPriorMean(torch.as_tensor(np.asarray(prior_x)[keep]),
                                torch.as_tensor(standardised))
        self._gp.fit(x, y_arr, mean_module=mean)
        return self

    @property
    def model(self) -> Model:
        """The fitted BoTorch model, for acquisition functions."""
        return self._gp.model

    def predict(
        self, x: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """See :meth:`TanimotoGPSurrogate.predict`."""
        return self._gp.predict(x)
