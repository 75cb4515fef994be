"""The perovskite domain as the engine sees it: CIF text, formula + sites + space group as
identity, the periodic structure as the oracles' geometry."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pymatgen.core import Structure

from materials.structures import design_key, from_geometry, structure_from_text, to_cif, to_geometry
from pipeline.registry import DOMAINS, PREPARERS
from pipeline.types import Candidate

PRETRAINED_PROPERTIES = ("formation_energy_ev_per_atom", "band_gap_ev")
"""What the shipped crystal property model (:mod:`materials.prior`) predicts."""


def candidate_structure(candidate: Candidate) -> Structure:
    """The structure of a perovskite candidate: its periodic geometry where it has one (an
    oracle's relaxed cell), else its CIF (or formula).

    Raises:
        ValueError: neither gives a structure; the message says why.
    """
    if candidate.geometry is not None and candidate.geometry.periodic:
        return from_geometry(candidate.geometry)
    return structure_from_text(candidate.representation)


@DOMAINS.register("perovskites")
class PerovskiteDomain:
    """Perovskites written as CIF (or named by formula: ``CsPbI3``, ``Cs2AgBiBr6``, which become
    the cubic or rock-salt prototype); the identity is :func:`materials.structures.design_key`."""

    label = "cif"

    def __repr__(self) -> str:
        return "PerovskiteDomain()"

    def default_surrogate(
        self, objective_property: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """For a property the crystal property model predicts (formation energy, band gap), a
        GP around its predictions (``prior_gp`` with ``crystal_painn``); otherwise a GP on the
        site fingerprints (``tanimoto_gp``).

        Returns:
            (surrogate, prior), each ``{"name": ..., "params": ...}``; the prior None where
            there is none for the property.
        """
        if objective_property in PRETRAINED_PROPERTIES:
            return {"name": "prior_gp", "params": {}}, {"name": "crystal_painn", "params": {}}
        return {"name": "tanimoto_gp", "params": {}}, None

    def key(self, text: str) -> str:
        """See :class:`pipeline.protocols.Domain`."""
        try:
            return design_key(structure_from_text(text))
        except ValueError:
            return text.strip()

    def parse_key(self, text: str) -> str | None:
        """See :class:`pipeline.protocols.Domain`."""
        try:
            return design_key(structure_from_text(text))
        except ValueError:
            return None

    def candidate(self, text: str, candidate_id: str, *, round_index: int = 0,
                  origin: str = "file") -> Candidate:
        """See :class:`pipeline.protocols.Domain`; a formula becomes its prototype's CIF."""
        try:
            structure = structure_from_text(text)
        except ValueError:
            return Candidate(id=candidate_id, key=text.strip(), representation=text,
                             round_index=round_index, origin=origin)
        return structure_candidate(structure, candidate_id, round_index=round_index,
                                   origin=origin)


def structure_candidate(structure: Structure, candidate_id: str, *, round_index: int = 0,
                        origin: str = "", parents: tuple[str, ...] = ()) -> Candidate:
    """A candidate for a structure: CIF text, canonical key, periodic geometry."""
    return Candidate(id=candidate_id, key=design_key(structure), representation=to_cif(structure),
                     round_index=round_index, origin=origin, parents=parents,
                     geometry=to_geometry(structure))


@PREPARERS.register("perovskites")
class PerovskiteGeometry:
    """Attaches the periodic geometry of a candidate's CIF where it has none."""

    def __repr__(self) -> str:
        return "PerovskiteGeometry()"

    def __call__(self, candidate: Candidate) -> Candidate:
        """See :class:`pipeline.protocols.Preparer`."""
        if candidate.geometry is not None and candidate.geometry.periodic:
            return candidate
        return replace(candidate, geometry=to_geometry(candidate_structure(candidate)))
