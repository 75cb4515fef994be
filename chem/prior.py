"""The pretrained property model as a prior for campaign surrogates."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.checkpoints import checkpoint_file
from pipeline.registry import PRIORS
from pipeline.types import Candidate

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "data" / "property_model.pt"
"""The shipped checkpoint (``invdes train surrogate`` writes it)."""


TRAIN_COMMAND = "invdes train surrogate --data ..."


@PRIORS.register("pretrained_painn")
class PretrainedPaiNNPrior:
    """HOMO, LUMO and gap (eV) from the pretrained PaiNN ensemble, on RDKit geometries made from
    each candidate's SMILES; predictions are cached by canonical SMILES."""

    class Params(BaseModel):
        """Settings of the prior.

        Attributes:
            weights: checkpoint path; default: the shipped one.
            fine_tune: before each round, fine-tune a copy of the network on the campaign's
                labelled designs (their most trusted values), so the prior follows the
                campaign's level of theory as labels accumulate.
            fine_tune_epochs: passes over the labelled designs per round.
            fine_tune_learning_rate: Adam step size of the fine-tuning.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        weights: str | None = None
        fine_tune: bool = False
        fine_tune_epochs: int = Field(default=30, ge=1, le=1000)
        fine_tune_learning_rate: float = Field(default=1e-4, gt=0, le=0.1)

        @field_validator("weights")
        @classmethod
        def _exists(cls, value: str | None) -> str | None:
            if value is not None:
                checkpoint_file(value, DEFAULT_WEIGHTS, "property-model", TRAIN_COMMAND)
            return value

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        path = checkpoint_file(self.params.weights, DEFAULT_WEIGHTS, "property-model",
                               TRAIN_COMMAND)
        from chem.property_model import PropertyEnsemble  # torch-geometric: import when used

        self.pretrained = PropertyEnsemble.load(path)
        self.ensemble = self.pretrained
        self._cache: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}

    def __repr__(self) -> str:
        return f"PretrainedPaiNNPrior({self.ensemble!r})"

    def fit(self, candidates: Sequence[Candidate],
            values: dict[str, npt.NDArray[np.float64]]) -> None:
        """Fine-tunes a copy of the pretrained network on labelled designs (with
        ``fine_tune``; otherwise does nothing).

        Args:
            candidates: the labelled designs.
            values: property -> value per candidate, (n,), NaN where unknown.
        """
        if not self.params.fine_tune or not candidates:
            return
        from chem.property_model import fine_tune

        props = self.pretrained.properties
        frame = pd.DataFrame({"smiles": [c.key for c in candidates]})
        for p in props:
            frame[p] = values.get(p, np.full(len(candidates), np.nan))
        frame = frame.drop_duplicates("smiles")
        data = self.pretrained.embed(frame)
        if len(data) == 0 or not np.isfinite(data.y).any():
            return
        self.ensemble = fine_tune(self.pretrained, data, self.params.fine_tune_epochs,
                                  self.params.fine_tune_learning_rate)
        self._cache.clear()

    def properties(self) -> tuple[str, ...]:
        """Properties it predicts."""
        return self.ensemble.properties

    def predict(
        self, candidates: Sequence[Candidate]
    ) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """See :class:`pipeline.protocols.Prior`."""
        props = self.ensemble.properties
        new = sorted({c.key for c in candidates} - set(self._cache))
        if new:
            predicted = self.ensemble.predict_smiles(new)
            nan = np.full(len(props), np.nan)
            for key in new:
                self._cache[key] = predicted.get(key, (nan, nan))
        rows = [self._cache[c.key] for c in candidates]
        return {p: (np.array([r[0][j] for r in rows]), np.array([r[1][j] for r in rows]))
                for j, p in enumerate(props)}
