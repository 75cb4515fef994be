"""The seams of a round: one small protocol per stage.

candidate -> filter -> surrogate -> acquisition -> oracle -> record
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from pipeline.types import Candidate, Evaluation, FilterResult, OracleResult


@dataclass(frozen=True, slots=True)
class ScoredDesign:
    """A design with an oracle result, as a parent for generators.

    Attributes:
        key: canonical identity (canonical SMILES for a molecule).
        representation: the design's text form.
        score: objective score, higher is better (see :class:`pipeline.objectives.Objective`).
        values: its oracle values at the most trusted fidelity, property -> value (the unit is
            in the name); generators that learn from labels (fine-tuning) read them.
    """

    key: str
    representation: str
    score: float
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GenerationContext:
    """What a generator knows when it is asked for proposals.

    Attributes:
        round_index: the round asking (0-based).
        seed: seed for this generator in this round; the same seed gives the same proposals.
        population: designs measured so far, best first.
        condition: property targets the campaign asks for, for example ``{"gap_ev": 3.5}``.
        id_prefix: prefix of the ids the generator gives its candidates (``r2-g0-``).
        bounds: limits the campaign puts on properties, (lowest, highest) with None where
            open: a minimised objective's hit threshold as the highest (a maximised one's as the
            lowest) and every outcome constraint, for example
            ``{"decomposition_energy_ev_per_atom": (None, 0.0)}``.
    """

    round_index: int
    seed: int
    population: tuple[ScoredDesign, ...] = ()
    condition: dict[str, float] = field(default_factory=dict)
    id_prefix: str = ""
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def candidate_id(self, i: int) -> str:
        """Returns the id of the ``i``-th proposal."""
        return f"{self.id_prefix}{i:04d}"


@runtime_checkable
class Generator(Protocol):
    """Proposes new designs."""

    def sample(self, n: int, *, context: GenerationContext) -> list[Candidate]:
        """Returns ``n`` proposals (valid or not; filters decide)."""
        ...

    def reference_keys(self) -> frozenset[str]:
        """Keys of the designs the generator learnt from (for novelty)."""
        ...


@runtime_checkable
class Filter(Protocol):
    """A stateless validity check on a batch of candidates."""

    def __call__(self, candidates: Sequence[Candidate]) -> FilterResult:
        """Returns one pass flag and one reason per candidate."""
        ...


@runtime_checkable
class Featurizer(Protocol):
    """Turns candidates into fixed-length feature vectors for surrogates."""

    def __call__(self, candidates: Sequence[Candidate]) -> npt.NDArray[np.float64]:
        """Returns features, shape (n_candidates, n_features)."""
        ...


@runtime_checkable
class Surrogate(Protocol):
    """A probabilistic property model fitted on the campaign's oracle results."""

    def fit(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Self:
        """Fits on features x (n, d) and targets y (n,)."""
        ...

    def predict(
        self, x: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Returns predictive mean and standard deviation, each shape (n,)."""
        ...


@runtime_checkable
class Prior(Protocol):
    """A pretrained property model whose predictions campaign surrogates start from."""

    def properties(self) -> tuple[str, ...]:
        """Properties it predicts."""
        ...

    def fit(self, candidates: Sequence[Candidate],
            values: dict[str, npt.NDArray[np.float64]]) -> None:
        """Adapts to the campaign's labelled designs, if it does (property -> values, (n,),
        NaN where unknown); may do nothing."""
        ...

    def predict(
        self, candidates: Sequence[Candidate]
    ) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """Property -> (mean, standard deviation), each (n_candidates,); NaN where it cannot
        predict a candidate."""
        ...


@runtime_checkable
class Preparer(Protocol):
    """Attaches what an oracle needs to a candidate, for example a 3D geometry."""

    def __call__(self, candidate: Candidate) -> Candidate:
        """Returns the candidate ready for the oracle.

        Raises:
            ValueError: when it cannot (the reason is stored as the oracle's failure).
        """
        ...


@runtime_checkable
class Oracle(Protocol):
    """The expensive truth: DFT, a force field, the lab."""

    @property
    def fidelity(self) -> str:
        """Fidelity name stored with every result (``dft-fast``, ``lab``)."""
        ...

    def properties(self) -> dict[str, str]:
        """Property names it returns, with their units."""
        ...

    def request_key(self, candidate: Candidate) -> str:
        """Content hash of the request, for caching and for never computing the same twice."""
        ...

    def run(self, candidate: Candidate) -> OracleResult:
        """One request; a failure is a result with status failed and its reason, never an error."""
        ...

    def __call__(self, candidates: Sequence[Candidate]) -> list[Evaluation]:
        """Evaluates candidates; a failure is an evaluation with status failed, never an error."""
        ...


@runtime_checkable
class ResultCache(Protocol):
    """The content-addressed store of oracle answers (:class:`pipeline.store.Store` is one)."""

    def oracle_result(self, request_key: str) -> OracleResult | None:
        """The stored answer under ``request_key``, or None."""
        ...

    def save_oracle_result(self, result: OracleResult) -> None:
        """Stores an answer under its request key (an existing one is kept)."""
        ...


@runtime_checkable
class CachingOracle(Protocol):
    """An oracle that keeps intermediate calculations (a hull's competing phases) in the
    campaign's result cache; the engine binds the store to it."""

    def bind_cache(self, cache: ResultCache) -> None:
        """Keeps intermediate results in ``cache`` from now on."""
        ...


@runtime_checkable
class Domain(Protocol):
    """What the engine needs to know of a kind of design (molecules, perovskites)."""

    label: str
    """Name of the text form in tables and files (``smiles``)."""

    def key(self, text: str) -> str:
        """Canonical identity of a design given as text (its text when it does not parse)."""
        ...

    def parse_key(self, text: str) -> str | None:
        """Canonical identity of a design given as text, or None when it does not parse."""
        ...

    def candidate(self, text: str, candidate_id: str, *, round_index: int = 0,
                  origin: str = "file") -> Candidate:
        """A candidate for a design given as text (from a file or a person)."""
        ...


@dataclass(frozen=True)
class OrbitalPicture:
    """Where the frontier orbitals of a computed design sit, for a picture.

    Attributes:
        symbols: element of every atom of the computed geometry, (n_atoms,).
        positions_angstrom: its coordinates, (n_atoms, 3) Angstrom.
        homo: share of the HOMO density on each atom, (n_atoms,), summing to 1.
        lumo: share of the LUMO density on each atom, (n_atoms,), summing to 1.
    """

    symbols: tuple[str, ...]
    positions_angstrom: tuple[tuple[float, float, float], ...]
    homo: tuple[float, ...]
    lumo: tuple[float, ...]


def placeholder_svg(text: str, size: tuple[int, int]) -> str:
    """A presenter's plain SVG saying why there is no picture (the text escaped).

    Args:
        text: the reason.
        size: (width, height), pixels.
    """
    from html import escape

    w, h = size
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}"><rect width="{w}" height="{h}" fill="#f6f6f6"/>'
            f'<text x="{w // 2}" y="{h // 2}" text-anchor="middle" font-family="sans-serif" '
            f'font-size="13" fill="#666">{escape(text)}</text></svg>')


@runtime_checkable
class Presenter(Protocol):
    """How the review page shows, searches and exports a domain's designs."""

    export_format: str
    """File type of :meth:`export` (``sdf``, ``cif``)."""

    def depict(self, candidate: Candidate, orbitals: OrbitalPicture | None = None) -> str:
        """An SVG picture of the design (shaded by where HOMO and LUMO sit, when known)."""
        ...

    def search(self, query: str, candidates: Sequence[Candidate]) -> list[bool]:
        """Which candidates match a search (SMARTS substructure, formula, ...).

        Raises:
            ValueError: a query that does not parse (the message says why).
        """
        ...

    def export(self, candidates: Sequence[Candidate], properties: Sequence[dict[str, Any]]
               ) -> str:
        """The designs as one file of :attr:`export_format`, each record carrying its candidate
        id and the given properties."""
        ...
