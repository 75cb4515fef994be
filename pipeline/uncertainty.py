"""Scoring and recalibrating Gaussian predictions (mean, standard deviation) of any domain.

A deep ensemble's standard deviation is scaled per property so that its 90 % intervals cover 90 %
of designs it did not train on (Kuleshov et al., 2018); the metrics that report it are
cross-fitted so that they stay honest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Z90 = 1.6448536269514722  # two-sided 90 % interval of a standard normal


def regression_metrics(y: npt.NDArray[np.float64], mean: npt.NDArray[np.float64],
                       std: npt.NDArray[np.float64], properties: Sequence[str]) -> dict[str, float]:
    """MAE (in the property's unit), Gaussian negative log-likelihood and 90 % interval coverage
    per property; rows where ``y`` is NaN are left out of that property's numbers.

    Args:
        y, mean, std: each (n, n_properties).
        properties: the column names.
    """
    out: dict[str, float] = {}
    for k, prop in enumerate(properties):
        known = np.isfinite(y[:, k])
        err = y[known, k] - mean[known, k]
        sd = std[known, k]
        var = np.maximum(sd, 1e-9) ** 2
        out[f"mae_{prop}"] = float(np.mean(np.abs(err)))
        out[f"nll_{prop}"] = float(np.mean(0.5 * (np.log(2 * math.pi * var) + err**2 / var)))
        out[f"coverage90_{prop}"] = float(np.mean(np.abs(err) <= Z90 * sd))
    return out


def interval_scales(y: npt.NDArray[np.float64], mean: npt.NDArray[np.float64],
                    std: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64],
                                                           npt.NDArray[np.float64]]:
    """The per-property factor on ``std`` that makes 90 % intervals cover 90 % of these rows,
    and ``std`` scaled cross-fitted (each half of the rows by the factor fitted on the other), for
    honest metrics.

    The factor is fitted on all rows (the 90 % quantile of |error| / std); NaN targets are left
    out.

    Args:
        y, mean, std: each (n, n_properties), rows the model did not train on.

    Returns:
        Factors (n_properties,) and the cross-fitted standard deviations (n, n_properties).
    """
    ratio = np.abs(y - mean) / np.maximum(std, 1e-9)

    def fit(rows: slice) -> npt.NDArray[np.float64]:
        return np.asarray(np.nanquantile(ratio[rows], 0.9, axis=0) / Z90)

    half = len(y) // 2
    if half == 0:
        scale = fit(slice(None))
        return scale, std * scale
    first, second = slice(None, half), slice(half, None)
    crossed = std.copy()
    crossed[first] *= fit(second)
    crossed[second] *= fit(first)
    return fit(slice(None)), crossed
