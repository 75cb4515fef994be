"""Molecular fingerprints for surrogates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from rdkit.Chem import rdFingerprintGenerator

from chem.molecules import mol_from_smiles
from pipeline.registry import FEATURIZERS
from pipeline.types import Candidate


@FEATURIZERS.register("morgan")
class MorganFingerprint:
    """Morgan (ECFP-like) fingerprint of a candidate's SMILES, as a 0/1 (or count) vector."""

    class Params(BaseModel):
        """Fingerprint settings.

        Attributes:
            radius: bond radius of the circular environments (2 is ECFP4).
            n_bits: length of the folded vector.
            counts: count occurrences instead of setting bits.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        radius: int = Field(default=2, ge=1, le=6)
        n_bits: int = Field(default=2048, ge=64, le=16384)
        counts: bool = False

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self._generator = rdFingerprintGenerator.GetMorganGenerator(
            radius=self.params.radius, fpSize=self.params.n_bits
        )

    def __repr__(self) -> str:
        p = self.params
        return f"MorganFingerprint(radius={p.radius}, n_bits={p.n_bits}, counts={p.counts})"

    def __call__(self, candidates: Sequence[Candidate]) -> npt.NDArray[np.float64]:
        """Fingerprints, shape (n_candidates, n_bits).

        Raises:
            ValueError: a candidate's SMILES does not parse (filters should have removed it).
        """
        out = np.zeros((len(candidates), self.params.n_bits), dtype=np.float64)
        for i, cand in enumerate(candidates):
            mol = mol_from_smiles(cand.representation)
            if mol is None:
                raise ValueError(f"candidate {cand.id}: cannot featurise SMILES "
                                 f"{cand.representation!r}")
            if self.params.counts:
                out[i] = self._generator.GetCountFingerprintAsNumPy(mol)
            else:
                out[i] = self._generator.GetFingerprintAsNumPy(mol)
        return out
