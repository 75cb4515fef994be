"""The crystal property model as a prior for perovskite campaign surrogates, and as a source
of predictions for filters and tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, field_validator

from materials.domain import candidate_structure
from pipeline.checkpoints import checkpoint_file
from pipeline.registry import PRIORS
from pipeline.types import Candidate

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from materials.crystal_model import CrystalEnsemble

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "data" / "crystal_model.pt"
"""The shipped checkpoint (``invdes train crystal-model`` writes it)."""
TRAIN_COMMAND = "invdes train crystal-model --data ..."

Predictions = dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]


def load_crystal_model(weights: str | None = None) -> CrystalEnsemble:
    """The crystal ensemble at ``weights`` (default: the shipped one).

    Raises:
        ValueError: no checkpoint there (naming the training command).
    """
    from materials.crystal_model import CrystalEnsemble

    return CrystalEnsemble.load(checkpoint_file(weights, DEFAULT_WEIGHTS, "crystal-model",
                                                TRAIN_COMMAND))


def predict_structures(model: CrystalEnsemble, structures: Sequence[Structure | None],
                       allow_unseen: bool = False
                       ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                  npt.NDArray[np.float64], list[str]]:
    """Predictions for structures; a missing structure or one the model cannot read gets NaN
    and its reason.

    Nor does a cell that is not physical (two sites within 0.5 Angstrom, or no volume: CDVAE's
    structural validity, :func:`materials.validity.structure_problem`): the network was never
    shown one and answers with anything (10^30 eV/atom for generated cells whose sites had
    collapsed onto each other).

    A structure with an element the model never saw in training gets none either (unless
    ``allow_unseen``): the shipped model, trained on oxides, nitrides, fluorides and sulfides,
    predicted a zero band gap with near-zero uncertainty for every halide perovskite tried
    (CsSnI3, Cs2AgBiBr6, ...), a confident extrapolation that must not steer a campaign.

    Returns:
        Mean and standard deviation (n, 2) in the columns of
        :data:`materials.crystal_model.PROPERTIES`, the probability of a non-zero gap (n,), and
        a reason per structure (empty where predicted).
    """
    from materials.crystal_graph import CrystalGraphs, build_graphs
    from materials.crystal_model import MAX_Z
    from materials.validity import structure_problem

    n = len(structures)
    mean, std = np.full((n, 2), np.nan), np.full((n, 2), np.nan)
    p_gap = np.full(n, np.nan)
    reasons = ["no structure" if s is None else "" for s in structures]
    usable = []
    known = model.known_elements()
    for i, s in enumerate(structures):
        if s is None:
            continue
        heavy = [site.specie.symbol for site in s if site.specie.Z > MAX_Z]
        if heavy:
            reasons[i] = f"element(s) {', '.join(sorted(set(heavy)))} beyond Z = {MAX_Z}"
            continue
        problem = structure_problem(s)
        if problem:
            reasons[i] = f"not a physical cell: {problem}"
            continue
        unseen = sorted({site.specie.symbol for site in s if site.specie.Z not in known})
        if unseen and not allow_unseen:
            reasons[i] = (f"element(s) {', '.join(unseen)} not in the model's training data "
                          "(extrapolation refused)")
            continue
        usable.append(i)
    graphs = []
    for i in list(usable):
        try:
            graphs.append(build_graphs([structures[i]], model.config.cutoff))  # type: ignore[list-item]
        except ValueError as exc:
            reasons[i] = str(exc)
            usable.remove(i)
    if usable:
        joined = CrystalGraphs.concat(graphs)
        mean[usable], std[usable], p_gap[usable] = model.predict_graphs(joined)
    return mean, std, p_gap, reasons


@PRIORS.register("crystal_painn")
class CrystalPaiNNPrior:
    """Formation energy (eV/atom) and band gap (eV) from the crystal property model, on each
    candidate's structure (its relaxed cell where an oracle left one, else its CIF); cached by
    candidate key."""

    class Params(BaseModel):
        """Settings of the prior.

        Attributes:
            weights: checkpoint path; default: the shipped one.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        weights: str | None = None

        @field_validator("weights")
        @classmethod
        def _exists(cls, value: str | None) -> str | None:
            if value is not None:
                checkpoint_file(value, DEFAULT_WEIGHTS, "crystal-model", TRAIN_COMMAND)
            return value

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self.model = load_crystal_model(self.params.weights)
        self._cache: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}

    def __repr__(self) -> str:
        return f"CrystalPaiNNPrior({self.model!r})"

    def properties(self) -> tuple[str, ...]:
        """Properties it predicts."""
        return self.model.properties

    def fit(self, candidates: Sequence[Candidate],
            values: dict[str, npt.NDArray[np.float64]]) -> None:
        """Does nothing: the GP on top adapts to the campaign's labels."""

    def predict(self, candidates: Sequence[Candidate]) -> Predictions:
        """See :class:`pipeline.protocols.Prior`."""
        new = list(dict.fromkeys(c.key for c in candidates if c.key not in self._cache))
        if new:
            first = {c.key: c for c in candidates}
            structures: list[Structure | None] = []
            for key in new:
                try:
                    structures.append(candidate_structure(first[key]))
                except ValueError:
                    structures.append(None)
            mean, std, _, _ = predict_structures(self.model, structures)
            for k, key in enumerate(new):
                self._cache[key] = (mean[k], std[k])
        rows = [self._cache[c.key] for c in candidates]
        return {p: (np.array([r[0][j] for r in rows]), np.array([r[1][j] for r in rows]))
                for j, p in enumerate(self.properties())}
