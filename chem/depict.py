"""Molecules on the review page: 2D depictions shaded by where the frontier orbitals sit,
SMARTS search and SDF export."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDepictor, rdDistGeom
from rdkit.Chem.Draw import rdMolDraw2D

from chem.molecules import heavy_atom_order, mol_from_smiles
from pipeline.orbital_shares import heavy_atom_shares
from pipeline.protocols import OrbitalPicture, placeholder_svg
from pipeline.registry import PRESENTERS
from pipeline.types import Candidate

PANEL = (300, 240)
"""Size of one depiction panel, pixels."""

HOMO_RGB = (0.17, 0.42, 0.85)
LUMO_RGB = (0.86, 0.24, 0.16)
NOTE_SHARE = 0.05
"""Atoms holding at least this share of an orbital get it written beside them (percent)."""


def _tint(rgb: tuple[float, float, float], strength: float) -> tuple[float, float, float]:
    """The colour mixed with white: ``strength`` 0 is white, 1 the full colour."""
    return tuple(1.0 - strength * (1.0 - c) for c in rgb)  # type: ignore[return-value]


def heavy_shares_in_smiles_order(mol: Chem.Mol, smiles: str, orbitals: OrbitalPicture
                                 ) -> tuple[np.ndarray, np.ndarray]:
    """The HOMO and LUMO shares of each heavy atom of ``mol`` (hydrogens folded in), in the
    atom order of ``smiles``.

    Raises:
        ValueError: the computed geometry is not the molecule of the SMILES.
    """
    order = heavy_atom_order(smiles, orbitals.symbols, orbitals.positions_angstrom)
    both = np.stack([np.asarray(orbitals.homo, float), np.asarray(orbitals.lumo, float)], axis=1)
    heavy, folded = heavy_atom_shares(list(orbitals.symbols),
                                      np.asarray(orbitals.positions_angstrom, float), both)
    position = {int(atom): k for k, atom in enumerate(heavy)}
    rows = folded[[position[i] for i in order]]
    if len(rows) != mol.GetNumAtoms():
        raise ValueError(f"{smiles}: {len(rows)} heavy atoms computed, {mol.GetNumAtoms()} drawn")
    return rows[:, 0], rows[:, 1]


@PRESENTERS.register("molecules")
class MoleculePresenter:
    """RDKit 2D depictions; with orbital shares, two panels (HOMO in blue, LUMO in red) whose
    atoms are shaded and sized by their share of the orbital, percentages written beside the
    atoms that hold at least 5 %."""

    export_format = "sdf"

    def depict(self, candidate: Candidate, orbitals: OrbitalPicture | None = None) -> str:
        """See :class:`pipeline.protocols.Presenter`."""
        smiles = candidate.key
        mol = mol_from_smiles(smiles)
        if mol is None:
            return placeholder_svg("no depiction: the SMILES does not parse", PANEL)
        rdDepictor.Compute2DCoords(mol)
        if orbitals is None:
            drawer = rdMolDraw2D.MolDraw2DSVG(*PANEL)
            drawer.DrawMolecule(mol)
            drawer.FinishDrawing()
            return str(drawer.GetDrawingText())
        try:
            homo, lumo = heavy_shares_in_smiles_order(mol, smiles, orbitals)
        except ValueError as exc:
            return placeholder_svg(f"no orbital picture: {exc}", PANEL)
        panels, highlights, colours, radii = [], [], [], []
        for shares, rgb in ((homo, HOMO_RGB), (lumo, LUMO_RGB)):
            copy = Chem.Mol(mol)
            top = max(float(shares.max()), 1e-9)
            for atom, share in zip(copy.GetAtoms(), shares, strict=True):
                if share >= NOTE_SHARE:
                    atom.SetProp("atomNote", f"{100 * share:.0f}%")
            panels.append(copy)
            atoms = list(range(copy.GetNumAtoms()))
            highlights.append(atoms)
            colours.append({i: _tint(rgb, float(shares[i]) / top) for i in atoms})
            radii.append({i: 0.2 + 0.35 * float(np.sqrt(shares[i] / top)) for i in atoms})
        drawer = rdMolDraw2D.MolDraw2DSVG(2 * PANEL[0], PANEL[1], *PANEL)
        options = drawer.drawOptions()
        options.legendFontSize = 16  # type: ignore[assignment]  # the stubs mistype it
        drawer.DrawMolecules(panels, highlightAtoms=highlights, highlightAtomColors=colours,
                             highlightAtomRadii=radii, highlightBonds=[[], []],
                             legends=["HOMO", "LUMO"])
        drawer.FinishDrawing()
        return str(drawer.GetDrawingText())

    def search(self, query: str, candidates: Sequence[Candidate]) -> list[bool]:
        """SMARTS substructure search (a SMILES is a SMARTS too).

        Raises:
            ValueError: the SMARTS does not parse.
        """
        pattern = Chem.MolFromSmarts(query.strip()) if query.strip() else None
        if pattern is None:
            raise ValueError(f"SMARTS {query!r} does not parse")
        out = []
        for c in candidates:
            mol = _parsed(c.key)
            out.append(bool(mol is not None and mol.HasSubstructMatch(pattern)))
        return out

    def export(self, candidates: Sequence[Candidate], properties: Sequence[dict[str, Any]]
               ) -> str:
        """SDF: the computed geometry where there is one (else an RDKit embedding, else 2D),
        ``_Name`` and ``candidate_id`` the candidate id, and one SD field per property."""
        from io import StringIO

        buffer = StringIO()
        writer = Chem.SDWriter(buffer)
        for candidate, props in zip(candidates, properties, strict=True):
            mol = _molecule_with_coordinates(candidate)
            if mol is None:
                continue
            mol.SetProp("_Name", candidate.id)
            mol.SetProp("candidate_id", candidate.id)
            mol.SetProp("smiles", candidate.key)
            for name, value in props.items():
                if value is not None and value != "":
                    mol.SetProp(_sd_field(name), str(value))
            writer.write(mol)
        writer.close()
        return buffer.getvalue()


@lru_cache(maxsize=50_000)
def _parsed(smiles: str) -> Chem.Mol | None:
    """The molecule of a SMILES, parsed once (searches go over every candidate of a campaign);
    never modified by its users."""
    return mol_from_smiles(smiles)


def _sd_field(name: str) -> str:
    """An SD field name without characters that break the format."""
    return re.sub(r"[<>\n\r]", "_", name)


def _molecule_with_coordinates(candidate: Candidate) -> Chem.Mol | None:
    """The molecule with hydrogens and 3D coordinates (the computed ones when the candidate's
    geometry matches its SMILES), or 2D ones when no embedding works."""
    mol = mol_from_smiles(candidate.key)
    if mol is None:
        return None
    mol = Chem.AddHs(mol)
    geometry = candidate.geometry
    if geometry is not None and geometry.lattice_angstrom is None \
            and len(geometry.symbols) == mol.GetNumAtoms() \
            and all(a.GetSymbol() == s for a, s in zip(mol.GetAtoms(), geometry.symbols,
                                                       strict=True)):
        conformer = Chem.Conformer(mol.GetNumAtoms())
        for i, xyz in enumerate(geometry.positions_angstrom):
            conformer.SetAtomPosition(i, xyz)
        mol.AddConformer(conformer, assignId=True)
        return mol
    if rdDistGeom.EmbedMolecule(mol, randomSeed=7) != 0:
        rdDepictor.Compute2DCoords(mol)
    return mol
