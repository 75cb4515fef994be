"""Surrogate property models fitted on a campaign's own oracle results."""

from __future__ import annotations

import math
import warnings
from typing import Any, Self

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

    def fit(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Self:
        """Fits hyperparameters by maximising the marginal likelihood.

        Args:
            x: features, shape (n, d), non-negative.
            y: targets, shape (n,), finite.
        """
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
        model = SingleTaskGP(
            x_t, y_t, likelihood=likelihood, covar_module=kernel,
            outcome_transform=Standardize(m=1),
        )
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(mll)
        model.eval()
        self._model = model
        return self

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
        x_t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        means, stds = [], []
        with torch.no_grad():
            for chunk in torch.split(x_t, 1024):
                posterior: Any = self.model.posterior(chunk, observation_noise=True)
                means.append(posterior.mean.squeeze(-1))
                stds.append(posterior.variance.clamp_min(0).sqrt().squeeze(-1))
        return torch.cat(means).numpy(), torch.cat(stds).numpy()
