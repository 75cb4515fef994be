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

DEFAULT_ORBITAL_WEIGHTS = DEFAULT_WEIGHTS.with_name("orbital_model.pt")
"""The shipped orbital-location checkpoint (``invdes train orbital-model`` writes it)."""


TRAIN_COMMAND = "invdes train surrogate --data ..."
ORBITAL_TRAIN_COMMAND = "invdes train orbital-model --labels ..."


@PRIORS.register("pretrained_painn")
class PretrainedPaiNNPrior:
    """HOMO, LUMO and gap (eV) from the pretrained PaiNN ensemble, on RDKit geometries made from
    each candidate's SMILES, and with ``orbitals`` the orbital-location descriptors
    (``frontier_overlap``, ``homo_pr``, ``lumo_share_N``, ...) from the orbital-share ensemble;
    predictions are cached by canonical SMILES."""

    class Params(BaseModel):
        """Settings of the prior.

        Attributes:
            weights: checkpoint path; default: the shipped one.
            fine_tune: before each round, fine-tune a copy of the network on the campaign's
                labelled designs (their most trusted values), so the prior follows the
                campaign's level of theory as labels accumulate.
            fine_tune_epochs: passes over the labelled designs per round.
            fine_tune_learning_rate: Adam step size of the fine-tuning.
            orbitals: also predict the orbital-location descriptors (for campaigns whose
                objective or constraints name one); they are not fine-tuned.
            orbital_weights: orbital-share checkpoint; default: the shipped one.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        weights: str | None = None
        fine_tune: bool = False
        fine_tune_epochs: int = Field(default=30, ge=1, le=1000)
        fine_tune_learning_rate: float = Field(default=1e-4, gt=0, le=0.1)
        orbitals: bool = False
        orbital_weights: str | None = None

        @field_validator("weights")
        @classmethod
        def _exists(cls, value: str | None) -> str | None:
            if value is not None:
                checkpoint_file(value, DEFAULT_WEIGHTS, "property-model", TRAIN_COMMAND)
            return value

        @field_validator("orbital_weights")
        @classmethod
        def _orbital_exists(cls, value: str | None) -> str | None:
            if value is not None:
                checkpoint_file(value, DEFAULT_ORBITAL_WEIGHTS, "orbital-model",
                                ORBITAL_TRAIN_COMMAND)
            return value

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        path = checkpoint_file(self.params.weights, DEFAULT_WEIGHTS, "property-model",
                               TRAIN_COMMAND)
        from chem.property_model import PropertyEnsemble  # torch-geometric: import when used

        self.pretrained = PropertyEnsemble.load(path)
        self.ensemble = self.pretrained
        self.orbital_model = None
        if self.params.orbitals:
            from chem.orbital_model import OrbitalShareEnsemble

            self.orbital_model = OrbitalShareEnsemble.load(checkpoint_file(
                self.params.orbital_weights, DEFAULT_ORBITAL_WEIGHTS, "orbital-model",
                ORBITAL_TRAIN_COMMAND))
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
        extra = self.orbital_model.properties if self.orbital_model is not None else ()
        return (*self.ensemble.properties, *extra)

    def predict(
        self, candidates: Sequence[Candidate]
    ) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """See :class:`pipeline.protocols.Prior`."""
        props = self.properties()
        new = sorted({c.key for c in candidates} - set(self._cache))
        if new:
            predicted = self.ensemble.predict_smiles(new)
            n_energy = len(self.ensemble.properties)
            nan = np.full(n_energy, np.nan)
            orbital = (self.orbital_model.predict_smiles(new)[0]
                       if self.orbital_model is not None else {})
            for key in new:
                mean, std = predicted.get(key, (nan, nan))
                if self.orbital_model is not None:
                    d = orbital[key].descriptors if key in orbital else {}
                    extra = self.orbital_model.properties
                    mean = np.concatenate([mean, [d.get(p, (np.nan, np.nan))[0] for p in extra]])
                    std = np.concatenate([std, [d.get(p, (np.nan, np.nan))[1] for p in extra]])
                self._cache[key] = (mean, std)
        rows = [self._cache[c.key] for c in candidates]
        return {p: (np.array([r[0][j] for r in rows]), np.array([r[1][j] for r in rows]))
                for j, p in enumerate(props)}
