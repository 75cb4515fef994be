"""Validity filters for molecules (RDKit). Each is stateless and gives a reason per rejection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rdkit import Chem

from chem.molecules import embed_geometry, mol_from_smiles
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


@dataclass(frozen=True, slots=True)
class StructuralAlert:
    """A named feature that makes a molecule chemically implausible or too unstable to make.

    Attributes:
        name: short key, used in rejection reasons and in ``PlausibilityFilter.Params.exclude``.
        what: what is wrong, in a few words.
        matches: whether a sanitised molecule (implicit hydrogens) has the feature.
    """

    name: str
    what: str
    matches: Callable[[Chem.Mol], bool]


def _smarts(*patterns: str) -> Callable[[Chem.Mol], bool]:
    """A predicate true when any of the SMARTS ``patterns`` matches."""
    queries = []
    for pattern in patterns:
        query = Chem.MolFromSmarts(pattern)
        if query is None:
            raise ValueError(f"invalid SMARTS {pattern!r}")
        queries.append(query)
    return lambda mol: any(mol.HasSubstructMatch(q) for q in queries)


SMALL_RING_MAX = 8
"""Largest ring that may not hold a triple bond or cumulated double bonds. Cyclohexyne and
1,2-cyclohexadiene are fleeting intermediates and 1,2-cyclooctadiene dimerises; cyclooctyne is
isolable but reacts like an activated alkyne, so it is rejected too; cyclononyne and
1,2-cyclononadiene are ordinary molecules."""

BREDT_MAX_S = 6
"""Largest Bredt number S (atoms in the bridges, bridgeheads excluded) of a bridged bicycle whose
bridgehead cannot carry a double bond (Fawcett 1950): S = 5 in bicyclo[2.2.1]hept-1-ene,
6 in bicyclo[2.2.2]oct-1-ene; bicyclo[3.3.1]non-1-ene (S = 7) is isolable."""


def _in_small_ring(mol: Chem.Mol, *bond_indices: int) -> bool:
    """Whether one ring of at most :data:`SMALL_RING_MAX` atoms holds all the given bonds."""
    wanted = set(bond_indices)
    return any(len(ring) <= SMALL_RING_MAX and wanted <= set(ring)
               for ring in mol.GetRingInfo().BondRings())


def _small_ring_triple_bond(mol: Chem.Mol) -> bool:
    return any(b.GetBondType() == Chem.BondType.TRIPLE and _in_small_ring(mol, b.GetIdx())
               for b in mol.GetBonds())


def _small_ring_cumulene(mol: Chem.Mol) -> bool:
    for atom in mol.GetAtoms():
        doubles = [b.GetIdx() for b in atom.GetBonds() if b.GetBondType() == Chem.BondType.DOUBLE]
        if any(_in_small_ring(mol, *pair) for pair in combinations(doubles, 2)):
            return True
    return False


def _anti_bredt(mol: Chem.Mol) -> bool:
    """A multiple bond at a bridgehead of a small bridged (not fused) bicycle.

    Two smallest rings that share three or more atoms are bridged (fused rings share exactly the
    two atoms of one bond, so naphthalene-like and decalin-like ring fusions never count); the
    shared atoms form a path whose two ends are the bridgeheads.
    """
    rings = [frozenset(r) for r in mol.GetRingInfo().AtomRings()]
    for ring_a, ring_b in combinations(rings, 2):
        shared = ring_a & ring_b
        if len(shared) < 3 or len(ring_a | ring_b) - 2 > BREDT_MAX_S:
            continue
        for idx in shared:
            atom = mol.GetAtomWithIdx(idx)
            if sum(n.GetIdx() in shared for n in atom.GetNeighbors()) >= 2:
                continue  # inside a bridge, not a bridgehead (norbornene's C=C lies here)
            if any(b.GetBondType() != Chem.BondType.SINGLE for b in atom.GetBonds()):
                return True
    return False


PLAUSIBILITY_ALERTS: tuple[StructuralAlert, ...] = (
    StructuralAlert("hypohalite", "O-F or other O-halogen bond, an explosive oxidant",
                    _smarts("[#8]-[F,Cl,Br,I]")),
    StructuralAlert("n_halogen", "N-F or other N-halogen bond, oxidising and labile",
                    _smarts("[#7]-[F,Cl,Br,I]")),
    StructuralAlert("peroxide", "O-O single bond, explosive", _smarts("[#8]-[#8]")),
    StructuralAlert("azide", "N=N+=N- group, small organic azides explode",
                    _smarts("[#7]=[#7+]=[#7-]", "[#7-]-[#7+]#[#7]")),
    StructuralAlert("diazo", "C=N+=N- group, loses N2",
                    _smarts("[#6]=[#7+]=[#7-]", "[#6-]-[#7+]#[#7]")),
    StructuralAlert("ynol", "OH on a triple-bonded carbon, tautomerises to a ketene or HNCO",
                    _smarts("[OX2H1]-[#6X2]#[#6,#7]")),
    # ynamides (N-acyl) and N-alkynyl azoles are stable
    StructuralAlert("ynamine", "amine N on a C#C carbon, tautomerises to a ketenimine",
                    _smarts("[#7X3;!a;!$([#7]-[#6,#16]=[#8,#16])]-[#6X2]#[#6]")),
    StructuralAlert("haloalkyne", "F, Cl, Br or I on an sp carbon as in fluoroacetylene, "
                    "explosive", _smarts("[F,Cl,Br,I]-[#6X2]#*")),
    StructuralAlert("aryne", "triple bond in an aromatic ring, a reactive intermediate",
                    _smarts("a#a")),
    StructuralAlert("small_ring_alkyne", f"triple bond in a ring of fewer than "
                    f"{SMALL_RING_MAX + 1} atoms, too strained", _small_ring_triple_bond),
    StructuralAlert("small_ring_allene", f"cumulated double bonds in a ring of fewer than "
                    f"{SMALL_RING_MAX + 1} atoms, too strained", _small_ring_cumulene),
    StructuralAlert("anti_bredt", "double bond at a bridgehead of a small bridged bicycle, "
                    "against Bredt's rule", _anti_bredt),
    StructuralAlert("antiaromatic_small_ring", "4 pi-electron 3- or 4-membered ring as in "
                    "cyclobutadiene, oxirene or 1H-azirine",
                    _smarts("[#6,#7]1=[#6,#7]-[#6,#7]=[#6,#7]-1", "[#6,#7]1=[#6,#7]-[#8,#7X3]-1")),
    StructuralAlert("ketene", "C=C=O group, dimerises and hydrates at once",
                    _smarts("[#6]=[#6X2]=[#8]")),
    StructuralAlert("cumulene", "three or more cumulated C=C as in butatriene, polymerises",
                    _smarts("[#6]=[#6X2]=[#6X2]=[#6]")),
    # the enol of a 1,3-dicarbonyl (O=C-C=C-OH, a vinylogous acid) is a stable tautomer
    StructuralAlert("enol", "OH on a C=C carbon, tautomerises to the carbonyl",
                    _smarts("[OX2H1]-[#6X3;!a]=[#6;!$([#6]-[#6]=[#8])]")),
    StructuralAlert("hemiacetal", "OH and another O on one sp3 carbon as in a hemiacetal or "
                    "gem-diol, loses water or an alcohol", _smarts("[OX2H1]-[CX4]-[#8]")),
    StructuralAlert("hemiaminal", "OH and N on one sp3 carbon, loses water",
                    _smarts("[OX2H1]-[CX4]-[#7]")),
    StructuralAlert("alpha_fluoro_oh_nh", "F and an OH or NH on one sp3 carbon, eliminates HF",
                    _smarts("F-[CX4]-[$([OX2H1]),$([#7;!H0])]")),
)
"""Alerts of :class:`PlausibilityFilter`. On a sample of 20,000 QM9 molecules only ``anti_bredt``
matches, 12 caged polycycles (0.06 %) whose bridgehead alkenes are genuinely anti-Bredt."""


@FILTERS.register("plausible")
class PlausibilityFilter:
    """Rejects chemically implausible or unstable structures by named alerts.

    Use it on the output of any generator that edits graphs freely: a graph GA readily proposes
    hypofluorites, ynols, arynes, cyclopentynes and anti-Bredt alkenes that sanitise in RDKit but
    would not survive in a flask. The alerts (:data:`PLAUSIBILITY_ALERTS`) target instability only;
    strained but real motifs that QM9 holds by the thousand (3- and 4-rings, N-N and N-O bonds in
    rings, C#C and C#N) pass. The reason of a rejection names every alert that matched.
    """

    class Params(BaseModel):
        """Which alerts to switch off.

        Attributes:
            exclude: names of alerts not to apply (see :data:`PLAUSIBILITY_ALERTS`).
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        exclude: list[str] = Field(default_factory=list)

        @field_validator("exclude")
        @classmethod
        def _known_alerts(cls, value: list[str]) -> list[str]:
            known = [a.name for a in PLAUSIBILITY_ALERTS]
            unknown = [name for name in value if name not in known]
            if unknown:
                raise ValueError(f"unknown alert {', '.join(map(repr, unknown))}; "
                                 f"known: {', '.join(known)}")
            return value

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self.alerts = tuple(a for a in PLAUSIBILITY_ALERTS if a.name not in self.params.exclude)

    def __repr__(self) -> str:
        return f"PlausibilityFilter(alerts={len(self.alerts)}, exclude={self.params.exclude})"

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""

        def check(mol: Chem.Mol) -> str:
            hits = [f"{a.name} ({a.what})" for a in self.alerts if a.matches(mol)]
            return f"alerts: {'; '.join(hits)}" if hits else ""

        return _per_molecule(candidates, check)


@FILTERS.register("embeddable")
class EmbeddableFilter:
    """RDKit ETKDG finds a 3D embedding, exactly as the oracle's preparer will ask for one.

    It calls :func:`chem.molecules.embed_geometry` with the preparer's arguments; that call is
    memoised, so the oracle stage reuses the geometry instead of embedding again. A new molecule
    of 9 heavy atoms costs about 11 ms, one that does not embed 0.5 to 3 s, so put it last. About
    1 % of QM9 (strained cages, mostly) does not embed. A candidate that already carries a
    geometry (from a 3D generator) passes: the preparer keeps it.
    """

    def __repr__(self) -> str:
        return "EmbeddableFilter(ETKDGv3)"

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """See :class:`pipeline.protocols.Filter`."""
        passed, reasons = [], []
        for cand in candidates:
            reason = ""
            if cand.geometry is None:
                if mol_from_smiles(cand.representation) is None:
                    reason = "RDKit cannot parse or sanitise the SMILES"
                else:
                    try:
                        embed_geometry(cand.representation)
                    except ValueError:
                        reason = "RDKit ETKDG found no 3D embedding"
            passed.append(not reason)
            reasons.append(reason)
        return FilterResult(tuple(passed), tuple(reasons))
