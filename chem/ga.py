"""Graph genetic algorithm: mutate and recombine the best molecules found so far.

In the manner of Jensen's graph-based GA (Chem. Sci. 10, 3567, 2019): parents are drawn by rank
from the campaign's measured molecules (topped up from a shipped seed library), then either
mutated by one graph edit or recombined by cutting each parent at an acyclic single bond and
joining a fragment of each. Edits work on Kekulé structures and respect free valences, but the
products are not checked here: the validity filters decide, and their rejections are recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from rdkit import Chem

from chem.molecules import candidate_key, canonical_smiles, mol_from_smiles
from pipeline.protocols import GenerationContext
from pipeline.registry import GENERATORS
from pipeline.types import Candidate

VALENCE = {"C": 4, "N": 3, "O": 2, "F": 1, "S": 2, "Cl": 1, "Br": 1, "P": 3}
_BOND = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}

T = TypeVar("T")
Rng = np.random.Generator
Edit = Callable[[Chem.RWMol, Rng, tuple[str, ...]], bool]


def load_seed_library(path: str | Path | None = None) -> list[str]:
    """Canonical SMILES of a seed library (one SMILES per line, ``#`` comments, name optional).

    Args:
        path: a ``.smi`` file; default: the library shipped in ``chem/data``.

    Raises:
        ValueError: naming the file and line of a SMILES RDKit cannot read.
    """
    if path is None:
        text = resources.files("chem").joinpath("data/seed_molecules.smi").read_text()
        source = "chem/data/seed_molecules.smi"
    else:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"{source}: cannot read seed library: {exc.strerror}") from None
    out: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        smiles = line.split()[0]
        canon = canonical_smiles(smiles)
        if canon is None:
            raise ValueError(f"{source}:{lineno}: RDKit cannot read SMILES {smiles!r}")
        out.append(canon)
    if not out:
        raise ValueError(f"{source}: no SMILES found")
    return out


def _kekule(smiles: str) -> Chem.RWMol:
    mol = mol_from_smiles(smiles)
    if mol is None:
        raise ValueError(f"invalid parent SMILES {smiles!r}")
    Chem.Kekulize(mol, clearAromaticFlags=True)
    return Chem.RWMol(mol)


def _free_h(atom: Chem.Atom) -> int:
    """Hydrogens an atom can give up for a new bond (valence minus bonds, for neutral atoms)."""
    valence = VALENCE.get(atom.GetSymbol())
    if valence is None or atom.GetFormalCharge() != 0:
        return 0
    used = sum(int(b.GetBondTypeAsDouble()) for b in atom.GetBonds())
    return max(0, valence - used)


def _pick(rng: Rng, items: Sequence[T]) -> T:
    return items[int(rng.integers(len(items)))]


def append_atom(mol: Chem.RWMol, rng: Rng, elements: tuple[str, ...]) -> bool:
    """Bonds a new atom to an atom with a free valence (single, double or triple)."""
    sites = [a.GetIdx() for a in mol.GetAtoms() if _free_h(a) > 0]
    if not sites:
        return False
    site = int(_pick(rng, sites))
    element = _pick(rng, elements)
    order_max = min(_free_h(mol.GetAtomWithIdx(site)), VALENCE[element], 3)
    orders = [1] * 6 + [2] * 2 * (order_max >= 2) + [3] * (order_max >= 3)
    order = int(_pick(rng, orders))
    new = mol.AddAtom(Chem.Atom(element))
    mol.AddBond(site, new, _BOND[order])
    return True


def insert_atom(mol: Chem.RWMol, rng: Rng, elements: tuple[str, ...]) -> bool:
    """Puts a new divalent-or-more atom into a single bond: A-B becomes A-X-B."""
    bonds = [b for b in mol.GetBonds() if b.GetBondType() == Chem.BondType.SINGLE]
    choices = [e for e in elements if VALENCE[e] >= 2]
    if not bonds or not choices:
        return False
    bond = _pick(rng, bonds)
    a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
    mol.RemoveBond(a, b)
    new = mol.AddAtom(Chem.Atom(_pick(rng, choices)))
    mol.AddBond(a, new, Chem.BondType.SINGLE)
    mol.AddBond(new, b, Chem.BondType.SINGLE)
    return True


def delete_atom(mol: Chem.RWMol, rng: Rng, elements: tuple[str, ...]) -> bool:
    """Removes a terminal atom, or a chain atom whose two neighbours are then bonded."""
    if mol.GetNumAtoms() < 2:
        return False
    sites = [
        a.GetIdx() for a in mol.GetAtoms()
        if a.GetDegree() == 1 or (a.GetDegree() == 2 and not a.IsInRing()
                                  and all(b.GetBondType() == Chem.BondType.SINGLE
                                          for b in a.GetBonds()))
    ]
    if not sites:
        return False
    site = int(_pick(rng, sites))
    neighbours = [n.GetIdx() for n in mol.GetAtomWithIdx(site).GetNeighbors()]
    if len(neighbours) == 2:
        if mol.GetBondBetweenAtoms(*neighbours) is not None:
            return False
        mol.AddBond(neighbours[0], neighbours[1], Chem.BondType.SINGLE)
    mol.RemoveAtom(site)
    return True


def change_element(mol: Chem.RWMol, rng: Rng, elements: tuple[str, ...]) -> bool:
    """Changes an atom to another allowed element whose valence fits its bonds."""
    atom = mol.GetAtomWithIdx(int(rng.integers(mol.GetNumAtoms())))
    used = sum(int(b.GetBondTypeAsDouble()) for b in atom.GetBonds())
    choices = [e for e in elements if e != atom.GetSymbol() and VALENCE[e] >= used]
    if not choices:
        return False
    atom.SetAtomicNum(Chem.GetPeriodicTable().GetAtomicNumber(_pick(rng, choices)))
    atom.SetFormalCharge(0)
    atom.SetNoImplicit(False)
    atom.SetNumExplicitHs(0)
    return True


def change_bond_order(mol: Chem.RWMol, rng: Rng, elements: tuple[str, ...]) -> bool:
    """Raises a bond's order by one (both atoms have a free valence) or lowers it by one."""
    if mol.GetNumBonds() == 0:
        return False
    bond = mol.GetBondWithIdx(int(rng.integers(mol.GetNumBonds())))
    order = int(bond.GetBondTypeAsDouble())
    a, b = bond.GetBeginAtom(), bond.GetEndAtom()
    can_raise = order < 3 and _free_h(a) > 0 and _free_h(b) > 0
    if can_raise and (order == 1 or rng.random() < 0.5):
        bond.SetBondType(_BOND[order + 1])
    elif order > 1:
        bond.SetBondType(_BOND[order - 1])
    else:
        return False
    return True


def add_ring_bond(mol: Chem.RWMol, rng: Rng, elements: tuple[str, ...]) -> bool:
    """Closes a 3- to 6-membered ring between two atoms with free valences (5 and 6 favoured)."""
    sites = [a.GetIdx() for a in mol.GetAtoms() if _free_h(a) > 0]
    distance = Chem.GetDistanceMatrix(mol)
    pairs = [
        (i, j) for k, i in enumerate(sites) for j in sites[k + 1:] if 2 <= distance[i][j] <= 5
    ]
    if not pairs:
        return False
    weights = np.array([1.0 + 3.0 * (distance[i][j] >= 4) for i, j in pairs])
    i, j = pairs[int(rng.choice(len(pairs), p=weights / weights.sum()))]
    mol.AddBond(i, j, Chem.BondType.SINGLE)
    return True


def delete_ring_bond(mol: Chem.RWMol, rng: Rng, elements: tuple[str, ...]) -> bool:
    """Opens a ring by removing one of its bonds."""
    bonds = [b for b in mol.GetBonds() if b.IsInRing()]
    if not bonds:
        return False
    bond = _pick(rng, bonds)
    mol.RemoveBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
    return True


MUTATIONS: dict[str, Edit] = {
    "append_atom": append_atom,
    "insert_atom": insert_atom,
    "delete_atom": delete_atom,
    "change_element": change_element,
    "change_bond_order": change_bond_order,
    "add_ring_bond": add_ring_bond,
    "delete_ring_bond": delete_ring_bond,
}


def _cut(smiles: str, rng: Rng) -> list[Chem.Mol]:
    """Both fragments of a parent cut at a random acyclic single bond, the cut marked by ``[*:1]``."""
    mol = _kekule(smiles)
    bonds = [
        b.GetIdx() for b in mol.GetBonds()
        if not b.IsInRing() and b.GetBondType() == Chem.BondType.SINGLE
    ]
    if not bonds:
        return []
    cut = Chem.FragmentOnBonds(mol, [int(_pick(rng, bonds))], addDummies=True)
    frags = list(Chem.GetMolFrags(cut, asMols=True, sanitizeFrags=False))
    for frag in frags:
        for atom in frag.GetAtoms():
            if atom.GetAtomicNum() == 0:
                atom.SetIsotope(0)
                atom.SetAtomMapNum(1)
    return frags


def crossover(smiles_a: str, smiles_b: str, rng: Rng) -> Chem.Mol | None:
    """Joins a fragment of parent A and a fragment of parent B at their cut points."""
    frags_a, frags_b = _cut(smiles_a, rng), _cut(smiles_b, rng)
    if not frags_a or not frags_b:
        return None
    left = frags_a[int(rng.integers(len(frags_a)))]
    right = frags_b[int(rng.integers(len(frags_b)))]
    try:
        return Chem.molzip(left, right)
    except (ValueError, RuntimeError):
        return None


def _to_smiles(mol: Chem.Mol) -> str | None:
    """SMILES of an edited molecule: canonical when it sanitises, else its raw form."""
    try:
        copy = Chem.Mol(mol)
        Chem.SanitizeMol(copy)
        return Chem.MolToSmiles(copy)
    except (ValueError, RuntimeError):
        pass
    try:
        mol.UpdatePropertyCache(strict=False)
        return Chem.MolToSmiles(mol, canonical=False, kekuleSmiles=True)
    except (ValueError, RuntimeError):
        return None


@GENERATORS.register("graph_ga")
class GraphGAGenerator:
    """Graph genetic algorithm over molecules (mutation and crossover with RDKit).

    Use it from the first round on, with no training: it needs only a seed library and the
    campaign's measured molecules. It explores locally around the best ones found so far.
    """

    class Params(BaseModel):
        """GA settings.

        Attributes:
            population_size: parents drawn from the best measured molecules, topped up from the
                seed library while fewer are measured.
            mutation_rate: share of proposals made by mutation; the rest by crossover.
            elements: elements that mutations may introduce.
            max_heavy_atoms: products above this size are made again (saves filter rejections).
            seed_library: a ``.smi`` file of seed molecules; default: the shipped library.
            max_tries_per_proposal: edits tried per proposal before giving up.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        population_size: int = Field(default=30, ge=2, le=10_000)
        mutation_rate: float = Field(default=0.6, ge=0.0, le=1.0)
        elements: list[str] = Field(default_factory=lambda: ["C", "N", "O", "F"], min_length=1)
        max_heavy_atoms: int = Field(default=9, ge=1, le=200)
        seed_library: str | None = None
        max_tries_per_proposal: int = Field(default=50, ge=1, le=10_000)

        @field_validator("elements")
        @classmethod
        def _known_elements(cls, value: list[str]) -> list[str]:
            unknown = [e for e in value if e not in VALENCE]
            if unknown:
                raise ValueError(f"graph_ga cannot add elements {unknown}; known: "
                                 f"{', '.join(sorted(VALENCE))}")
            return value

        @field_validator("seed_library")
        @classmethod
        def _readable_library(cls, value: str | None) -> str | None:
            if value is not None:
                load_seed_library(value)  # raises ValueError naming file and line
            return value

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self._elements = tuple(self.params.elements)
        self._seeds = load_seed_library(self.params.seed_library)

    def __repr__(self) -> str:
        p = self.params
        return (f"GraphGAGenerator(population_size={p.population_size}, "
                f"mutation_rate={p.mutation_rate}, elements={p.elements}, "
                f"seeds={len(self._seeds)})")

    def reference_keys(self) -> frozenset[str]:
        """The seed library (for novelty)."""
        return frozenset(self._seeds)

    def parents(self, context: GenerationContext, rng: Rng) -> list[str]:
        """The mating pool: best measured molecules first, topped up with seed molecules."""
        pool = [d.representation for d in context.population[: self.params.population_size]]
        missing = self.params.population_size - len(pool)
        if missing > 0:
            taken = set(pool)
            seeds = [s for s in self._seeds if s not in taken]
            picks = rng.choice(len(seeds), size=min(missing, len(seeds)), replace=False)
            pool += [seeds[int(i)] for i in picks]
        return pool

    def sample(self, n: int, *, context: GenerationContext) -> list[Candidate]:
        """Makes ``n`` proposals (fewer only if every try of a proposal failed).

        Args:
            n: number of proposals.
            context: round, seed and the measured population (best first).
        """
        rng = np.random.default_rng(context.seed)
        pool = self.parents(context, rng)
        # rank weights: the best parent is drawn about len(pool) times as often as the worst
        weights = np.arange(len(pool), 0, -1, dtype=np.float64)
        weights /= weights.sum()
        out: list[Candidate] = []
        for i in range(n):
            made = self._one(pool, weights, rng)
            if made is None:
                continue
            smiles, origin, parents = made
            out.append(Candidate(
                id=context.candidate_id(i), key=candidate_key(smiles), representation=smiles,
                round_index=context.round_index, origin=origin, parents=parents,
            ))
        return out

    def _one(
        self, pool: list[str], weights: np.ndarray, rng: Rng
    ) -> tuple[str, str, tuple[str, ...]] | None:
        names = list(MUTATIONS)
        parents: tuple[str, ...]
        for _ in range(self.params.max_tries_per_proposal):
            if rng.random() < self.params.mutation_rate or len(pool) < 2:
                parent = pool[int(rng.choice(len(pool), p=weights))]
                name = names[int(rng.integers(len(names)))]
                mol = _kekule(parent)
                if not MUTATIONS[name](mol, rng, self._elements):
                    continue
                product: Chem.Mol | None = mol
                origin, parents = f"mutation:{name}", (parent,)
            else:
                ia, ib = rng.choice(len(pool), size=2, replace=False, p=weights)
                product = crossover(pool[int(ia)], pool[int(ib)], rng)
                origin, parents = "crossover", (pool[int(ia)], pool[int(ib)])
            if product is None or product.GetNumAtoms() == 0:
                continue
            if sum(a.GetAtomicNum() > 1 for a in product.GetAtoms()) > self.params.max_heavy_atoms:
                continue
            smiles = _to_smiles(product)
            if smiles is None or smiles in parents:
                continue
            return smiles, origin, parents
        return None
