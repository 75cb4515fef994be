"""Validity filters for molecules (RDKit). Each is stateless and gives a reason per rejection."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rdkit import Chem

from chem.molecules import mol_from_smiles
from pipeline.registry import FILTERS
from pipeline.types import Candidate, FilterResult

_PERIODIC = Chem.GetPeriodicTable()


def _per_molecule(
    candidates: Sequence[Candidate], check: Callable[[Chem.Mol], str]
) -> FilterResult:
    """Applies ``check`` (returns "" to pass, else the reason) to each parsed candidate."""
    passed, reasons = [], []
    for cand in candidates:
        mol = mol_from_smiles(cand.representation)
        reason = "RDKit cannot parse or sanitise the SMILES" if mol is None else check(mol)
        passed.append(not reason)
        reasons.append(reason)
    return FilterResult(tuple(passed), tuple(reasons))


@FILTERS.register("sanitizable")
class SanitizableFilter:
    """RDKit can parse the SMILES and sanitise the molecule (valences, aromaticity)."""

    def __repr__(self) -> str:
        return "SanitizableFilter()"

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""
        return _per_molecule(candidates, lambda mol: "")


@FILTERS.register("single_fragment")
class SingleFragmentFilter:
    """The molecule is one connected fragment (no salts, no mixtures)."""

    def __repr__(self) -> str:
        return "SingleFragmentFilter()"

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""

        def check(mol: Chem.Mol) -> str:
            n = len(Chem.GetMolFrags(mol))
            return "" if n == 1 else f"{n} disconnected fragments"

        return _per_molecule(candidates, check)


@FILTERS.register("elements")
class ElementsFilter:
    """Every heavy atom is one of the allowed elements (hydrogen is always allowed)."""

    class Params(BaseModel):
        """Allowed elements.

        Attributes:
            allowed: element symbols, for example ``[C, N, O, F]``.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        allowed: list[str] = Field(default_factory=lambda: ["C", "N", "O", "F"], min_length=1)

        @field_validator("allowed")
        @classmethod
        def _real_elements(cls, value: list[str]) -> list[str]:
            for symbol in value:
                try:
                    if _PERIODIC.GetAtomicNumber(symbol) < 1:
                        raise ValueError
                except (ValueError, RuntimeError):
                    raise ValueError(f"{symbol!r} is not an element symbol") from None
            return value

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self._allowed = frozenset(self.params.allowed) | {"H"}

    def __repr__(self) -> str:
        return f"ElementsFilter(allowed={self.params.allowed})"

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""

        def check(mol: Chem.Mol) -> str:
            bad = sorted({a.GetSymbol() for a in mol.GetAtoms()} - self._allowed)
            if not bad:
                return ""
            return f"element {', '.join(bad)} not allowed (allowed: {', '.join(self.params.allowed)})"

        return _per_molecule(candidates, check)


@FILTERS.register("heavy_atoms")
class HeavyAtomsFilter:
    """The number of heavy (non-hydrogen) atoms lies in [min, max]."""

    class Params(BaseModel):
        """Size bounds.

        Attributes:
            min: fewest heavy atoms.
            max: most heavy atoms.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        min: int = Field(default=1, ge=1, le=500)
        max: int = Field(default=9, ge=1, le=500)

        @model_validator(mode="after")
        def _ordered(self) -> HeavyAtomsFilter.Params:
            if self.min > self.max:
                raise ValueError(f"min={self.min} is larger than max={self.max}")
            return self

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()

    def __repr__(self) -> str:
        return f"HeavyAtomsFilter(min={self.params.min}, max={self.params.max})"

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""

        def check(mol: Chem.Mol) -> str:
            n = mol.GetNumHeavyAtoms()
            if self.params.min <= n <= self.params.max:
                return ""
            return f"{n} heavy atoms, allowed {self.params.min} to {self.params.max}"

        return _per_molecule(candidates, check)


@FILTERS.register("neutral")
class NeutralFilter:
    """Net charge zero and no unpaired electrons (closed-shell neutral molecule)."""

    def __repr__(self) -> str:
        return "NeutralFilter()"

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""

        def check(mol: Chem.Mol) -> str:
            charge = Chem.GetFormalCharge(mol)
            if charge:
                return f"net charge {charge:+d}"
            radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
            return f"{radicals} unpaired electrons" if radicals else ""

        return _per_molecule(candidates, check)


@FILTERS.register("synthetic_accessibility")
class SyntheticAccessibilityFilter:
    """Synthetic accessibility score (Ertl and Schuffenhauer, 2009) at most ``max``.

    The score runs from 1 (easy to make) to 10 (very hard); strained cages and crowded fused
    small rings, which a graph GA readily proposes, score 7 and above.
    """

    class Params(BaseModel):
        """Bound on the score.

        Attributes:
            max: highest allowed SA score (1 to 10).
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        max: float = Field(default=6.0, ge=1.0, le=10.0)

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        from rdkit.Contrib.SA_Score import sascorer

        self._score = sascorer.calculateScore

    def __repr__(self) -> str:
        return f"SyntheticAccessibilityFilter(max={self.params.max})"

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""

        def check(mol: Chem.Mol) -> str:
            score = float(self._score(mol))
            return "" if score <= self.params.max else (
                f"SA score {score:.2f} above {self.params.max}")

        return _per_molecule(candidates, check)
