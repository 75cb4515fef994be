"""Molecules on the review page: orbital shading follows the SMILES atoms, SMARTS, SDF."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from chem.depict import MoleculePresenter, heavy_shares_in_smiles_order
from chem.molecules import embed_geometry
from pipeline.protocols import OrbitalPicture
from pipeline.types import Candidate


def _picture(smiles: str, order: list[int] | None = None) -> tuple[Candidate, OrbitalPicture]:
    """A candidate and made-up shares: the HOMO all on the first heavy atom's neighbourhood
    (its hydrogens included), the LUMO on the last heavy atom."""
    geometry = embed_geometry(smiles)
    n = len(geometry.symbols)
    order = order or list(range(n))
    symbols = [geometry.symbols[i] for i in order]
    positions = [geometry.positions_angstrom[i] for i in order]
    mol = Chem.MolFromSmiles(smiles)
    heavy = mol.GetNumAtoms()
    homo = np.zeros(n)
    lumo = np.zeros(n)
    homo[0] = 0.6
    hydrogens = [i for i in range(heavy, n)
                 if Chem.AddHs(mol).GetAtomWithIdx(i).GetNeighbors()[0].GetIdx() == 0]
    homo[hydrogens] = 0.4 / len(hydrogens)
    lumo[heavy - 1] = 1.0
    picture = OrbitalPicture(tuple(symbols), tuple(tuple(p) for p in positions),
                             tuple(homo[order]), tuple(lumo[order]))
    return Candidate("m1", smiles, smiles, 0, "t", geometry=geometry), picture


def test_shares_are_read_in_smiles_order_whatever_the_geometry_order() -> None:
    candidate, picture = _picture("CCO", order=[8, 2, 0, 5, 1, 3, 4, 6, 7])
    mol = Chem.MolFromSmiles("CCO")
    homo, lumo = heavy_shares_in_smiles_order(mol, "CCO", picture)
    np.testing.assert_allclose(homo, [1.0, 0.0, 0.0], atol=1e-9)  # the methyl carbon and its Hs
    np.testing.assert_allclose(lumo, [0.0, 0.0, 1.0], atol=1e-9)
    svg = MoleculePresenter().depict(candidate, picture)
    assert "width='600px'" in svg and "class='note" in svg


def test_pictures_without_shares_or_with_the_wrong_geometry_still_draw() -> None:
    presenter = MoleculePresenter()
    plain = presenter.depict(Candidate("a", "c1ccccc1", "c1ccccc1", 0, "t"))
    assert "width='300px'" in plain
    _, other = _picture("CCN")
    wrong = presenter.depict(Candidate("b", "CCO", "CCO", 0, "t"), other)
    assert "no orbital picture" in wrong
    broken = presenter.depict(Candidate("c", "invalid:C(", "invalid:C(", 0, "t"))
    assert "does not parse" in broken


def test_smarts_search_and_sdf_export() -> None:
    presenter = MoleculePresenter()
    cands = [Candidate(str(i), s, s, 0, "t") for i, s in enumerate(["CC=O", "CCO", "c1ccccc1O"])]
    assert presenter.search("[CX3]=O", cands) == [True, False, False]
    assert presenter.search("c1ccccc1", cands) == [False, False, True]
    with pytest.raises(ValueError, match="SMARTS 'C1CC' does not parse"):
        presenter.search("C1CC", cands)
    sdf = presenter.export(cands[:2], [{"gap_ev": 6.1, "note": "<b>"}, {"gap_ev": None}])
    supplier = Chem.SDMolSupplier()
    supplier.SetData(sdf, removeHs=False)
    mols = list(supplier)
    assert [m.GetProp("candidate_id") for m in mols] == ["0", "1"]
    assert mols[0].GetProp("gap_ev") == "6.1" and not mols[1].HasProp("gap_ev")
    assert mols[0].GetNumAtoms() == 7 and mols[0].GetConformer().Is3D()
