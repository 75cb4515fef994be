from __future__ import annotations

import numpy as np
import pytest

from chem.featurize import MorganFingerprint
from chem.molecules import MoleculeGeometry, _embed_memoised, canonical_smiles, embed_geometry
from pipeline.types import Candidate


def test_canonical_smiles_identifies_the_same_molecule() -> None:
    assert canonical_smiles("OCC") == canonical_smiles("C(O)C") == "CCO"
    assert canonical_smiles("C1CC") is None


def test_embedded_geometry_is_reproducible_with_hydrogens_and_sane_bonds() -> None:
    g1 = embed_geometry("CCO")
    _embed_memoised.cache_clear()  # a fresh embedding, not the memoised one
    g2 = embed_geometry("CCO")
    assert g1 == g2 and g1 is not g2
    assert sorted(g1.symbols) == ["C", "C", "H", "H", "H", "H", "H", "H", "O"]
    pos = np.array(g1.positions_angstrom)
    c_o = np.linalg.norm(pos[1] - pos[2])
    assert 1.35 < c_o < 1.50  # C-O single bond, Angstrom
    assert (g1.charge, g1.multiplicity) == (0, 1)
    with pytest.raises(ValueError, match="invalid SMILES"):
        embed_geometry("C1CC")


def test_preparer_keeps_an_existing_geometry() -> None:
    given = embed_geometry("O")
    cand = Candidate("a", "O", "O", 0, "test", geometry=given)
    assert MoleculeGeometry()(cand).geometry is given
    fresh = MoleculeGeometry()(Candidate("b", "N", "N", 0, "test"))
    assert fresh.geometry is not None and fresh.geometry.symbols.count("H") == 3


def test_morgan_fingerprint_shapes_and_errors() -> None:
    fp = MorganFingerprint(MorganFingerprint.Params(n_bits=256))
    cands = [Candidate(str(i), s, s, 0, "t") for i, s in enumerate(["CCO", "CCO", "c1ccccc1"])]
    x = fp(cands)
    assert x.shape == (3, 256) and set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x[0], x[1])
    assert not np.array_equal(x[0], x[2])
    with pytest.raises(ValueError, match="cannot featurise"):
        fp([Candidate("bad", "C1CC", "C1CC", 0, "t")])


def test_heavy_atom_order_maps_smiles_atoms_onto_a_geometry_in_another_order() -> None:
    from chem.molecules import embed_geometry, heavy_atom_order

    geometry = embed_geometry("OCC#N")  # atoms O, C, C, N, then hydrogens
    order = [5, 3, 6, 0, 1, 2, 4]  # shuffle all seven atoms
    symbols = [geometry.symbols[i] for i in order]
    positions = [geometry.positions_angstrom[i] for i in order]
    mapping = heavy_atom_order("OCC#N", symbols, positions)
    assert [order[i] for i in mapping] == [0, 1, 2, 3]
    # a zwitterion SMILES matches its neutral-looking geometry by element and bonds alone
    glycine = embed_geometry("NCC(=O)O")
    assert len(heavy_atom_order("[NH3+]CC(=O)[O-]", glycine.symbols,
                                glycine.positions_angstrom)) == 5
    with pytest.raises(ValueError, match="does not match"):
        heavy_atom_order("CC(=O)N", symbols, positions)  # same elements, branched
    with pytest.raises(ValueError, match="heavy atoms"):
        heavy_atom_order("CCCC#N", symbols, positions)
