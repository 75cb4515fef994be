"""Frozen record types that travel between the stages of a round."""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class CandidateStatus(StrEnum):
    """Where a candidate stands in its campaign."""

    REJECTED = "rejected"  # failed a validity filter; the reason is stored with it
    POOL = "pool"  # passed the filters, not picked for an oracle
    SELECTED = "selected"  # picked by the acquisition step, oracle result pending
    EVALUATED = "evaluated"  # the oracle returned a value
    FAILED = "failed"  # the oracle failed; the reason is stored with the evaluation


class EvaluationStatus(StrEnum):
    """Outcome of one oracle request."""

    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Geometry:
    """A 3D structure: a molecule, or the unit cell of a periodic crystal.

    Attributes:
        symbols: element symbols, one per atom (n_atoms,).
        positions_angstrom: Cartesian coordinates, (n_atoms, 3) Angstrom.
        charge: total charge in elementary charges.
        multiplicity: spin multiplicity 2S+1.
        lattice_angstrom: for a periodic structure, the three lattice vectors as rows,
            (3, 3) Angstrom; None for a molecule.
    """

    symbols: tuple[str, ...]
    positions_angstrom: tuple[tuple[float, float, float], ...]
    charge: int = 0
    multiplicity: int = 1
    lattice_angstrom: tuple[tuple[float, float, float], ...] | None = None

    def __post_init__(self) -> None:
        if len(self.symbols) != len(self.positions_angstrom):
            raise ValueError(
                f"Geometry has {len(self.symbols)} symbols but "
                f"{len(self.positions_angstrom)} positions"
            )
        if self.lattice_angstrom is not None:
            rows = self.lattice_angstrom
            if len(rows) != 3 or any(len(r) != 3 for r in rows):
                raise ValueError(f"lattice_angstrom must be three vectors of three numbers, "
                                 f"got {rows}")
            a, b, c = rows
            volume = (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                      + a[2] * (b[0] * c[1] - b[1] * c[0]))
            if not abs(volume) > 1e-6:
                raise ValueError(f"lattice_angstrom {rows} spans no volume")

    @builtins.property
    def periodic(self) -> bool:
        """Whether this is a crystal's unit cell."""
        return self.lattice_angstrom is not None

    def to_xyz(self, comment: str = "") -> str:
        """Returns the geometry as an XYZ block (Angstrom); a periodic one as extended XYZ, its
        lattice in the comment line (``Lattice="ax ay az bx ..." pbc="T T T"``)."""
        if self.lattice_angstrom is not None:
            flat = " ".join(f"{x:.8f}" for row in self.lattice_angstrom for x in row)
            comment = f'Lattice="{flat}" Properties=species:S:1:pos:R:3 pbc="T T T" {comment}'
        lines = [str(len(self.symbols)), comment.strip()]
        lines += [
            f"{s:<2s} {x:14.8f} {y:14.8f} {z:14.8f}"
            for s, (x, y, z) in zip(self.symbols, self.positions_angstrom, strict=True)
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One proposed design, as it moves through a round.

    Attributes:
        id: identifier unique within its campaign, for example ``r2-0017``.
        key: canonical identity used to recognise the same design twice (canonical SMILES for a
            molecule); an unparsable proposal keeps its raw text as key.
        representation: the text form the generator produced (SMILES, CIF, ...).
        round_index: the round that proposed it (0-based).
        origin: how it was made, for example ``mutation:append_atom`` or ``seed``.
        parents: ids or keys of the designs it was made from.
        geometry: optional 3D structure, set by generators that place atoms or by a conformer step.
    """

    id: str
    key: str
    representation: str
    round_index: int
    origin: str
    parents: tuple[str, ...] = ()
    geometry: Geometry | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One property value of one candidate from one oracle request.

    A failed request is ``status=FAILED`` with ``value`` NaN and a ``reason``; it is never 0.

    Attributes:
        candidate_id: the candidate this value belongs to.
        property: property name with its unit in the name, for example ``gap_ev``.
        value: the value in ``unit``; NaN when failed.
        unit: unit of ``value`` (``eV``, ``Hartree``, ``Debye``).
        fidelity: the level of truth, for example ``dft-fast`` or ``lab``.
        status: ok or failed.
        reason: why it failed; empty when ok.
        provenance: method, basis, code versions, wall time, request key and similar facts.
    """

    candidate_id: str
    property: str
    value: float
    unit: str
    fidelity: str
    status: EvaluationStatus = EvaluationStatus.OK
    reason: str = ""
    provenance: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.provenance, MappingProxyType):
            object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))
        if self.status is EvaluationStatus.OK and not math.isfinite(self.value):
            raise ValueError(f"ok evaluation of {self.property} has non-finite value {self.value}")
        if self.status is EvaluationStatus.FAILED and not self.reason:
            raise ValueError(f"failed evaluation of {self.property} needs a reason")

    @builtins.property  # the field ``property`` shadows the builtin in this class body
    def ok(self) -> bool:
        """Whether the oracle returned a value."""
        return self.status is EvaluationStatus.OK


@dataclass(frozen=True, slots=True)
class OracleResult:
    """Everything one oracle request returned, cached by its content key.

    Attributes:
        request_key: content hash of the request (same request, same key).
        oracle: registry name of the oracle.
        fidelity: fidelity of its values.
        status: ok or failed.
        reason: why it failed; empty when ok.
        values: property -> value (empty when failed).
        units: property -> unit.
        details: JSON-able extras: per-atom features, the geometry used, code versions.
        provenance: the level of theory and other facts stored with every value.
    """

    request_key: str
    oracle: str
    fidelity: str
    status: EvaluationStatus
    reason: str
    values: Mapping[str, float]
    units: Mapping[str, str]
    details: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @builtins.property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.status is EvaluationStatus.OK

    def evaluations(self, candidate_id: str, **extra_provenance: Any) -> list[Evaluation]:
        """One evaluation per property for ``candidate_id`` (NaN and the reason when failed)."""
        provenance = {**self.provenance, "request_key": self.request_key, **extra_provenance}
        return [
            Evaluation(candidate_id, prop, self.values[prop] if self.ok else math.nan, unit,
                       self.fidelity, self.status, self.reason, provenance)
            for prop, unit in self.units.items()
        ]


@dataclass(frozen=True, slots=True)
class FilterResult:
    """Verdict of one filter on a batch of candidates.

    Attributes:
        passed: one flag per candidate, in input order.
        reasons: why each rejected candidate failed; empty string where it passed.
    """

    passed: tuple[bool, ...]
    reasons: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.passed) != len(self.reasons):
            raise ValueError("FilterResult needs one reason per candidate")


@dataclass(frozen=True, slots=True)
class Prediction:
    """Surrogate mean and standard deviation of one property for one candidate."""

    mean: float
    std: float
