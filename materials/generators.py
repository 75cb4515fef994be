"""Perovskite generators that need no training: ionic substitution on the sites of known or
measured perovskites, and enumeration of A/B/X combinations from allowed element lists.

Both are charge-aware: a proposal is kept only when the tool can charge-balance it with
oxidation states and Shannon radii (:func:`materials.formability.assess`); whether it is likely
a perovskite is the filters' call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymatgen.core import Species, Structure

from materials.domain import structure_candidate
from materials.formability import ANION_STATES, Formability, FormabilityError, assess
from materials.sampling_defaults import ANNEAL, MIN_DISTANCE
from materials.structures import (
    cubic_perovskite,
    double_perovskite,
    lattice_guess_angstrom,
    parse_formula,
    tilted_supercell,
)
from pipeline.protocols import GenerationContext
from pipeline.registry import GENERATORS
from pipeline.types import Candidate

if TYPE_CHECKING:
    from pipeline.conditions import Condition

SEED_PEROVSKITES = Path(__file__).resolve().parent / "data" / "seed_perovskites.txt"
DEFAULT_CRYSTAL_GENERATOR = SEED_PEROVSKITES.with_name("crystal_generator.pt")
"""The shipped crystal generator (see the README for its recipe)."""
"""Known perovskites (one formula a line) that substitution starts from."""
RADIOACTIVE = frozenset({"Tc", "Pm", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np",
                         "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr"})


def load_seed_perovskites(path: str | Path | None = None) -> list[str]:
    """Formulas of a seed file (one a line, ``#`` comments).

    Raises:
        ValueError: a line that is not a perovskite formula (file and line named).
    """
    path = Path(path) if path else SEED_PEROVSKITES
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    formulas = []
    for n, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            parse_formula(text)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: {exc}") from None
        formulas.append(text)
    if not formulas:
        raise ValueError(f"{path}: no formulas")
    return formulas


def _sites(f: Formability) -> dict[str, tuple[str, int]]:
    sites = {"A": (f.a, f.n_a), "B": (f.b, f.n_b), "X": (f.x, f.n_x)}
    if f.b2 is not None and f.n_b2 is not None:
        sites["B2"] = (f.b2, f.n_b2)
    return sites


def _prototype(f: Formability, tilted: bool, seed: int) -> Structure:
    lattice = lattice_guess_angstrom(f)
    if f.b2 is not None:
        return double_perovskite(f.a, f.b, f.b2, f.x, lattice)
    cell = cubic_perovskite(f.a, f.b, f.x, lattice)
    return tilted_supercell(cell, seed=seed) if tilted else cell


class _StructureParams(BaseModel):
    """What the proposals look like.

    Attributes:
        tilted_share: share of ABX3 proposals made as a rattled sqrt2 x sqrt2 x 2 supercell
            (20 atoms), in which a relaxation can find octahedral tilts; the rest are the cubic
            5-atom cell. Double perovskites are the 10-atom rock-salt cell.
        allowed: elements proposals may contain (None: any with Shannon radii, radioactive
            ones left out).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    tilted_share: float = Field(default=0.0, ge=0.0, le=1.0)
    allowed: list[str] | None = None


@GENERATORS.register("ionic_substitution")
class IonicSubstitutionGenerator:
    """Substitutes one site of a parent perovskite by an ion that often replaces it in known
    crystals (pymatgen's data-mined substitution probabilities, Hautier et al., Inorg. Chem. 50,
    656, 2011), keeping the charge balance.

    Parents: the campaign's best measured designs, topped up with the seed perovskites (those
    whose anion is allowed).
    """

    class Params(_StructureParams):
        """Substitution settings.

        Attributes:
            parents: parents drawn per round (best measured first, then seeds).
            min_probability: substitutions less probable than this (conditional probability
                of the new ion given the old) are not made.
            seed_file: formulas to start from; default: the shipped list.
            max_tries_per_proposal: substitutions tried per proposal before giving up.
        """

        parents: int = Field(default=20, ge=1, le=10_000)
        min_probability: float = Field(default=1e-3, ge=0.0, le=1.0)
        seed_file: str | None = None
        max_tries_per_proposal: int = Field(default=50, ge=1, le=10_000)

        @field_validator("seed_file")
        @classmethod
        def _readable(cls, value: str | None) -> str | None:
            if value is not None:
                load_seed_perovskites(value)
            return value

    def __init__(self, params: Params | None = None) -> None:
        from pymatgen.analysis.structure_prediction.substitution_probability import (
            SubstitutionProbability,
        )

        self.params = params or self.Params()
        self._seeds = load_seed_perovskites(self.params.seed_file)
        self._table = SubstitutionProbability()
        self._cache: dict[tuple[str, int], list[tuple[str, int, float]]] = {}

    def __repr__(self) -> str:
        return f"IonicSubstitutionGenerator({self.params!r}, seeds={len(self._seeds)})"

    def reference_keys(self) -> frozenset[str]:
        """The seed perovskites' keys (for novelty)."""
        from materials.structures import design_key

        return frozenset(design_key(parse_formula(f)) for f in self._seeds)

    def replacements(self, element: str, state: int) -> list[tuple[str, int, float]]:
        """Ions that replace ``element`` in ``state``: (element, state, probability), most
        probable first, of the same sign of charge, allowed and not radioactive."""
        key = (element, state)
        if key not in self._cache:
            old = Species(element, state)
            found = []
            for new in self._table.species:
                el, n = new.symbol, int(new.oxi_state or 0)
                if (el == element or n * state <= 0 or el in RADIOACTIVE
                        or (self.params.allowed is not None and el not in self.params.allowed)):
                    continue
                p = float(self._table.cond_prob(old, new))
                if p >= self.params.min_probability:
                    found.append((el, n, p))
            self._cache[key] = sorted(found, key=lambda t: -t[2])
        return self._cache[key]

    def _parents(self, context: GenerationContext, rng: np.random.Generator) -> list[Formability]:
        from materials.filters import candidate_formability
        from materials.structures import structure_from_text

        parents = []
        for design in context.population[: self.params.parents]:
            try:
                parents.append(candidate_formability(structure_from_text(design.representation)))
            except (ValueError, FormabilityError):
                continue
        allowed = self.params.allowed
        for i in rng.permutation(len(self._seeds)):
            if len(parents) >= self.params.parents:
                break
            try:
                seed = _formability_of_formula(self._seeds[int(i)])
            except (ValueError, FormabilityError):
                continue
            if allowed is None or seed.x in allowed:  # one substitution cannot change X's charge
                parents.append(seed)
        return parents

    def sample(self, n: int, *, context: GenerationContext) -> list[Candidate]:
        """Makes ``n`` proposals (fewer when every try of one failed)."""
        rng = np.random.default_rng(context.seed)
        parents = self._parents(context, rng)
        out: list[Candidate] = []
        seen: set[str] = set()
        if not parents:
            return out
        for i in range(n):
            for _ in range(self.params.max_tries_per_proposal):
                parent = parents[int(rng.integers(len(parents)))]
                sites = _sites(parent)
                site = list(sites)[int(rng.integers(len(sites)))]
                element, state = sites[site]
                options = self.replacements(element, state)
                if not options:
                    continue
                weights = np.array([p for _, _, p in options])
                new_el, _, _ = options[int(rng.choice(len(options), p=weights / weights.sum()))]
                changed = {k: v[0] for k, v in sites.items()}
                changed[site] = new_el
                if len(set(changed.values())) < len(changed) or changed["X"] not in ANION_STATES:
                    continue
                if self.params.allowed is not None and not set(changed.values()) <= set(
                        self.params.allowed):
                    continue
                try:
                    f = assess(changed["A"], changed["B"], changed["X"], changed.get("B2"))
                except FormabilityError:
                    continue
                tilted = f.b2 is None and rng.random() < self.params.tilted_share
                structure = _prototype(f, tilted, context.seed + i)
                parent_formula = _formula(parent)
                candidate = structure_candidate(
                    structure, context.candidate_id(i), round_index=context.round_index,
                    origin=f"substitution:{site}:{element}->{new_el}", parents=(parent_formula,))
                if candidate.key in seen:
                    continue
                seen.add(candidate.key)
                out.append(candidate)
                break
        return out


def _formula(f: Formability) -> str:
    """Reduced formula of an assessed composition (without building its cell)."""
    from pymatgen.core import Composition

    text = f"{f.a}2{f.b}{f.b2}{f.x}6" if f.b2 else f"{f.a}{f.b}{f.x}3"
    return Composition(text).reduced_formula


def _formability_of_formula(formula: str) -> Formability:
    from materials.filters import candidate_formability

    return candidate_formability(parse_formula(formula))


@GENERATORS.register("perovskite_enumeration")
class PerovskiteEnumerationGenerator:
    """Random charge-balanced ABX3 (and, with ``double``, A2BB'X6) from element lists."""

    class Params(_StructureParams):
        """Enumeration settings.

        Attributes:
            a_elements: elements for the A site.
            b_elements: elements for the B site (and B').
            x_elements: anions.
            double_share: share of proposals that are double perovskites A2BB'X6.
            max_tries_per_proposal: combinations drawn per proposal before giving up.
        """

        a_elements: list[str] = Field(min_length=1)
        b_elements: list[str] = Field(min_length=1)
        x_elements: list[str] = Field(min_length=1)
        double_share: float = Field(default=0.0, ge=0.0, le=1.0)
        max_tries_per_proposal: int = Field(default=200, ge=1, le=100_000)

        @field_validator("x_elements")
        @classmethod
        def _anions(cls, value: list[str]) -> list[str]:
            unknown = [x for x in value if x not in ANION_STATES]
            if unknown:
                raise ValueError(f"{unknown} are not anions this tool knows: "
                                 f"{', '.join(ANION_STATES)}")
            return value

    def __init__(self, params: Params) -> None:
        self.params = params

    def __repr__(self) -> str:
        return f"PerovskiteEnumerationGenerator({self.params!r})"

    def reference_keys(self) -> frozenset[str]:
        """None: enumeration learns from nothing."""
        return frozenset()

    def sample(self, n: int, *, context: GenerationContext) -> list[Candidate]:
        """Makes ``n`` proposals (fewer when no charge-balanced combination was drawn)."""
        p = self.params
        rng = np.random.default_rng(context.seed)
        out: list[Candidate] = []
        seen: set[str] = set()
        for i in range(n):
            for _ in range(p.max_tries_per_proposal):
                a = p.a_elements[int(rng.integers(len(p.a_elements)))]
                x = p.x_elements[int(rng.integers(len(p.x_elements)))]
                double = rng.random() < p.double_share and len(p.b_elements) >= 2
                picks: Sequence[str] = (rng.choice(p.b_elements, size=2, replace=False).tolist()
                                        if double else
                                        [p.b_elements[int(rng.integers(len(p.b_elements)))]])
                bs = sorted(str(b) for b in picks)
                try:
                    f = assess(a, bs[0], x, bs[1] if double else None)
                except FormabilityError:
                    continue
                if not math.isfinite(f.t):
                    continue
                tilted = not double and rng.random() < p.tilted_share
                candidate = structure_candidate(
                    _prototype(f, tilted, context.seed + i), context.candidate_id(i),
                    round_index=context.round_index, origin="enumeration")
                if candidate.key in seen:
                    continue
                seen.add(candidate.key)
                out.append(candidate)
                break
        return out


@GENERATORS.register("crystal_flow")
class CrystalFlowGenerator:
    """The equivariant crystal generator (:mod:`materials.crystal_flow`) in a campaign: de novo
    perovskite cells, steered by ``conditions`` and by the campaign's targets on the
    properties the generator knows (:meth:`campaign_conditions`).

    Every cell with a lattice becomes a proposal; the filters judge them (charge balance,
    formability, geometry).
    """

    class Params(BaseModel):
        """Settings.

        Attributes:
            weights: generator checkpoint; default: the shipped one.
            conditions: ``NAME=VALUE``, ``NAME<=VALUE`` or ``NAME>=VALUE`` over the generator's
                properties; the campaign's targets (:meth:`campaign_conditions`) on the other
                properties are added.
            atoms: sites per cell (5, or 10 for the double-perovskite cell); default: the
                training cells' sizes.
            steps: integration steps.
            guidance: classifier-free guidance weight.
            anneal: coordinate velocity scaling 1 + anneal t in sampling.
            min_distance: Angstrom; from half way on, sites closer than this are pushed
                apart after each step (0: never).
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        added_later: ClassVar[tuple[str, ...]] = ("min_distance",)
        weights: str | None = None
        conditions: list[str] | None = None
        anneal: float = Field(default=ANNEAL, ge=0.0, le=100.0)
        min_distance: float = Field(default=MIN_DISTANCE, ge=0.0, le=3.0)
        atoms: int | None = Field(default=None, ge=1, le=40)
        steps: int = Field(default=100, ge=1, le=1000)
        guidance: float = Field(default=1.0, ge=0.0, le=20.0)

    def __init__(self, params: Params | None = None) -> None:
        from materials.crystal_flow import CrystalGenerator
        from pipeline.checkpoints import checkpoint_file
        from pipeline.conditions import parse_condition

        self.params = params or self.Params()
        self.generator = CrystalGenerator.load(checkpoint_file(
            self.params.weights, DEFAULT_CRYSTAL_GENERATOR, "crystal generator",
            "invdes train generator --domain perovskites --data ..."))
        self.conditions = [parse_condition(c, self.generator.properties)
                           for c in self.params.conditions or []]

    def __repr__(self) -> str:
        return f"CrystalFlowGenerator({self.params!r})"

    def reference_keys(self) -> frozenset[str]:
        """Design keys of the training cells (for novelty)."""
        return self.generator.reference_keys()

    def campaign_conditions(self, context: GenerationContext) -> list[Condition]:
        """The campaign's targets on the generator's properties: a window's middle as ``=``,
        a minimised objective's threshold as ``<=`` (a maximised one's as ``>=``), and the
        constraints' bounds."""
        from pipeline.conditions import Condition

        known = set(self.generator.properties)
        out = [Condition(name, "=", value) for name, value in context.condition.items()
               if name in known]
        targeted = {c.name for c in out}
        for name, (low, high) in context.bounds.items():
            if name not in known or name in targeted:
                continue
            if low is not None:
                out.append(Condition(name, ">=", low))
            if high is not None:
                out.append(Condition(name, "<=", high))
        return out

    def sample(self, n: int, *, context: GenerationContext) -> list[Candidate]:
        """Samples ``n`` cells; those with a lattice become proposals."""
        from materials.crystal_generation import generate_crystals

        explicit = {c.name for c in self.conditions}
        conditions = self.conditions + [c for c in self.campaign_conditions(context)
                                        if c.name not in explicit]
        samples, _ = generate_crystals(self.generator, n, conditions, context.seed % (2**63),
                                       self.params.atoms, None, 1, self.params.guidance,
                                       self.params.steps, anneal=self.params.anneal,
                                       min_distance=self.params.min_distance)
        return [structure_candidate(s.structure, context.candidate_id(i),
                                    round_index=context.round_index, origin="crystal_flow")
                for i, s in enumerate(samples) if s.structure is not None]
