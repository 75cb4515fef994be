"""CHGNet stability of a perovskite from what sits on its A, B and X sites.

The quantity is the CHGNet oracle's own: the decomposition energy (eV/atom) of the cell after
the oracle's relaxation, against its competing phases (``invdes perovskite label-stability
--relax``). After relaxation the cell's geometry is the minimum near the perovskite motif, so
what is left to predict is chemistry: the model is an exact GP with a Tanimoto kernel (the
campaign surrogates' :class:`pipeline.surrogates.TanimotoGPSurrogate`) on the per-site element
occupancies and element properties of :func:`materials.featurize.site_fingerprint`, without its
volume and distortion entries (a generated cell's geometry is not yet the relaxed one). It gives
a mean and a standard deviation, so the crystal generator can keep the cells most likely to be
stable (``decomposition_energy_ev_per_atom<=0``).

The checkpoint (``.npz``) holds the training fingerprints and labels and the fitted
hyperparameters: loading rebuilds the same GP without fitting.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from pymatgen.core import Structure

from materials.featurize import site_fingerprint
from pipeline.surrogates import TanimotoGPSurrogate

STABILITY_PROPERTY = "decomposition_energy_ev_per_atom"
"""The property this model predicts (eV/atom; <= 0: on or below the CHGNet hull)."""

Array = npt.NDArray[np.float64]


def stability_features(structure: Structure) -> Array:
    """Site-resolved composition fingerprint of a cell, shape (3 * (94 + 4),).

    Raises:
        ValueError: the cell's sites cannot be told apart as A, B and X.
    """
    return site_fingerprint(structure, geometry=False)


def _features_or_nan(structures: Sequence[Structure | None]) -> tuple[Array, npt.NDArray[np.bool_]]:
    """Fingerprints (n, d) and which structures have one."""
    rows: list[Array | None] = []
    for s in structures:
        try:
            rows.append(stability_features(s) if s is not None else None)
        except ValueError:
            rows.append(None)
    width = next((len(r) for r in rows if r is not None), 0)
    out = np.zeros((len(structures), width))
    ok = np.array([r is not None for r in rows], dtype=bool)
    for k, r in enumerate(rows):
        if r is not None:
            out[k] = r
    return out, ok


@dataclass
class StabilityModel:
    """A fitted stability GP.

    Attributes:
        fingerprints: training fingerprints, shape (n, d).
        targets: relaxed CHGNet decomposition energies, eV/atom, shape (n,).
        ids: the labelled structures' ids, length n.
        metrics: held-out scores and provenance (from :func:`train_stability_model`).
        std_scale: factor on the GP's standard deviation so that 90 % intervals cover 90 % of
            held-out cells (:func:`train_stability_model` sets it on the validation cells).
    """

    fingerprints: Array
    targets: Array
    ids: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    std_scale: float = 1.0
    _gp: TanimotoGPSurrogate | None = field(default=None, repr=False)

    def calibrate(self, x: Array, y: Array) -> float:
        """Sets :attr:`std_scale` so that 90 % intervals cover 90 % of the labelled cells
        ``x`` (n, d), ``y`` (n,) (cells not trained on); returns it."""
        from scipy.stats import norm

        self.std_scale = 1.0
        mean, std = self.predict_fingerprints(x)
        ratio = np.abs(mean - y) / np.maximum(std, 1e-9)
        self.std_scale = float(np.quantile(ratio, 0.9) / norm.ppf(0.95))
        return self.std_scale

    @classmethod
    def fit(cls, fingerprints: Array, targets: Array, ids: Sequence[str],
            metrics: dict[str, Any] | None = None) -> StabilityModel:
        """Fits the GP's hyperparameters on labelled fingerprints.

        Raises:
            ValueError: fewer than 2 labels, non-finite labels or mismatched shapes.
        """
        x = np.asarray(fingerprints, dtype=np.float32).astype(np.float64)  # as saved
        y = np.asarray(targets, dtype=np.float64)
        gp = TanimotoGPSurrogate().fit(x, y)
        return cls(x, y, [str(i) for i in ids], dict(metrics or {}), 1.0, gp)

    @property
    def gp(self) -> TanimotoGPSurrogate:
        if self._gp is None:
            raise RuntimeError("StabilityModel has no GP; build it with fit() or load()")
        return self._gp

    def predict_fingerprints(self, x: Array) -> tuple[Array, Array]:
        """Mean and calibrated standard deviation (eV/atom), each shape (n,), of fingerprints
        (n, d)."""
        if len(x) == 0:
            return np.zeros(0), np.zeros(0)
        mean, std = self.gp.predict(np.asarray(x, dtype=np.float64))
        return (np.asarray(mean, dtype=np.float64),
                self.std_scale * np.asarray(std, dtype=np.float64))

    def predict(self, structures: Sequence[Structure | None]) -> tuple[Array, Array]:
        """Predicted relaxed decomposition energy, eV/atom, mean and standard deviation, each
        shape (n,); NaN for a missing cell or one whose sites cannot be assigned."""
        x, ok = _features_or_nan(structures)
        mean = np.full(len(structures), np.nan)
        std = np.full(len(structures), np.nan)
        if ok.any():
            mean[ok], std[ok] = self.predict_fingerprints(x[ok])
        return mean, std

    def probability_stable(self, structures: Sequence[Structure | None]) -> Array:
        """P(decomposition energy <= 0) under the predictive Gaussian, shape (n,); NaN where
        there is no prediction."""
        from scipy.stats import norm

        mean, std = self.predict(structures)
        return np.asarray(norm.cdf(-mean / np.maximum(std, 1e-9)), dtype=np.float64)

    def save(self, path: str | Path) -> None:
        """Writes the checkpoint (compressed ``.npz``)."""
        buffer = io.BytesIO()
        torch.save(self.gp.state_dict(), buffer)
        np.savez_compressed(
            Path(path), fingerprints=self.fingerprints.astype(np.float32), targets=self.targets,
            ids=np.array(self.ids), gp_state=np.frombuffer(buffer.getvalue(), dtype=np.uint8),
            metrics=np.array(json.dumps(self.metrics)), std_scale=np.array(self.std_scale))

    @classmethod
    def load(cls, path: str | Path) -> StabilityModel:
        """Reads a checkpoint written by :meth:`save`.

        Raises:
            ValueError: the file is not a stability model checkpoint (the path is named).
        """
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                x = data["fingerprints"].astype(np.float64)
                y = data["targets"].astype(np.float64)
                ids = [str(i) for i in data["ids"]]
                state = torch.load(io.BytesIO(data["gp_state"].tobytes()), weights_only=True)
                metrics = json.loads(str(data["metrics"]))
                std_scale = float(data["std_scale"])
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a stability model checkpoint ({exc})") from None
        gp = TanimotoGPSurrogate().restore(x, y, state)
        return cls(x, y, ids, metrics, std_scale, gp)


def stability_metrics(y: Array, mean: Array, std: Array) -> dict[str, float]:
    """Held-out scores: MAE (eV/atom), AUC of ``stable`` (y <= 0) against -mean, 90 % interval
    coverage, and the stable share among the quarter and the eighth predicted most stable
    against the share of all."""
    from scipy.stats import norm

    from materials.crystal_model import roc_auc

    stable = y <= 0.0
    order = np.argsort(mean)
    z = float(norm.ppf(0.95))
    out = {"n": float(len(y)), "mae_ev_per_atom": float(np.mean(np.abs(mean - y))),
           "auc_stable": roc_auc(stable, -mean),
           "coverage_90": float(np.mean(np.abs(mean - y) <= z * std)),
           "stable_share": float(stable.mean()) if len(y) else math.nan}
    for name, part in (("quarter", 4), ("eighth", 8)):
        k = max(1, len(y) // part)
        out[f"stable_share_top_{name}"] = float(stable[order[:k]].mean()) if len(y) else math.nan
    return out


def labelled_cells(labels: Path, structures: Sequence[Structure], ids: Sequence[str]
                   ) -> tuple[list[int], Array]:
    """Which of the table's structures have a relaxed stability label, and the labels.

    Args:
        labels: a relaxed labels file (``invdes perovskite label-stability --relax``).
        structures: the table's cells.
        ids: the table's ids, as in the labels file's ``material_id``.

    Returns:
        Indices into the table and their decomposition energies (eV/atom).

    Raises:
        ValueError: the file is not a relaxed labels file, or a value is not a number (file,
            row and column named).
    """
    import pandas as pd

    from materials.datasets import read_stability_labels

    header = pd.read_csv(labels, nrows=0).columns
    if "relaxation_steps" not in header:
        raise ValueError(f"{labels}: not a relaxed stability labels file (no relaxation_steps "
                         "column; make it with invdes perovskite label-stability --relax)")
    values = read_stability_labels(labels, ids)
    index = [k for k in range(len(structures)) if np.isfinite(values[k])]
    return index, values[index]


def train_stability_model(table: Any, labels: Path) -> StabilityModel:
    """Fits the model on the labelled training cells, calibrates its uncertainty on the
    validation ones and scores it on the held-out ones (the crystal property model's split of
    compositions: 75 / 10 / 15 %).

    Args:
        table: a :class:`materials.datasets.PerovskiteTable` (the perov-5 pool).
        labels: its relaxed stability labels.

    Raises:
        ValueError: bad labels, or too few labelled cells on either side of the split.
    """
    from materials.datasets import composition_split

    index, y = labelled_cells(labels, table.structures, table.ids)
    split = composition_split(table.reduced_formulas)[index]
    x, ok = _features_or_nan([table.structures[k] for k in index])
    train = ok & (split == "train")
    validation = ok & (split == "validation")
    test = ok & (split == "test")
    if train.sum() < 10:
        raise ValueError(f"{labels}: {int(train.sum())} labelled training cells; at least 10 "
                         "are needed")
    ids = [table.ids[k] for k in index]
    model = StabilityModel.fit(x[train], y[train], [i for i, t in zip(ids, train, strict=True)
                                                    if t])
    metrics: dict[str, Any] = {"labels": Path(labels).name, "train_cells": int(train.sum()),
                               "validation_cells": int(validation.sum()),
                               "unassignable": int((~ok).sum())}
    if validation.sum() >= 10:
        metrics["std_scale"] = model.calibrate(x[validation], y[validation])
    if test.sum() >= 2:
        mean, std = model.predict_fingerprints(x[test])
        metrics["test"] = stability_metrics(y[test], mean, std)
    model.metrics = metrics
    return model
