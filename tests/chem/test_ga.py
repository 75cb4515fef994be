from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from chem.ga import MUTATIONS, GraphGAGenerator, crossover, load_seed_library
from chem.molecules import canonical_smiles
from pipeline.protocols import GenerationContext, ScoredDesign


def test_shipped_seed_library_is_valid_and_small() -> None:
    seeds = load_seed_library()
    assert len(seeds) == 200
    assert all(Chem.MolFromSmiles(s).GetNumHeavyAtoms() <= 7 for s in seeds)


def test_bad_seed_library_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "seeds.smi"
    path.write_text("# comment\nCCO\nC1CC\n")
    with pytest.raises(ValueError, match=r"seeds.smi:3: RDKit cannot read SMILES 'C1CC'"):
        load_seed_library(path)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_mutation_changes_the_molecule_and_keeps_valences(name: str) -> None:
    rng = np.random.default_rng(0)
    changed = 0
    for smiles in ("CC(=O)NC1CC1", "c1ccncc1", "OCC#N"):
        mol = Chem.RWMol(Chem.MolFromSmiles(smiles))
        Chem.Kekulize(mol, clearAromaticFlags=True)
        if MUTATIONS[name](mol, rng, ("C", "N", "O")):
            product = mol.GetMol()
            Chem.SanitizeMol(product)  # valences respected: no exception
            changed += Chem.MolToSmiles(product) != canonical_smiles(smiles)
    assert changed >= 1


def test_crossover_joins_fragments_of_both_parents() -> None:
    rng = np.random.default_rng(1)
    products = {Chem.MolToSmiles(m) for _ in range(30)
                if (m := crossover("CCCCOC", "NCCC(F)(F)F", rng)) is not None}
    assert any("F" in p and "O" in p for p in products)


def test_sampling_is_seeded_and_draws_on_the_population() -> None:
    gen = GraphGAGenerator(GraphGAGenerator.Params(population_size=3, mutation_rate=1.0))
    best = (ScoredDesign("c1ccccc1O", "c1ccccc1O", 1.0), ScoredDesign("CCN", "CCN", 0.5),
            ScoredDesign("OCC=O", "OCC=O", 0.1))
    ctx = GenerationContext(round_index=2, seed=11, population=best, id_prefix="r2-g0-")
    first = gen.sample(30, context=ctx)
    again = gen.sample(30, context=ctx)
    assert [c.representation for c in first] == [c.representation for c in again]
    assert first[0].id == "r2-g0-0000" and first[0].round_index == 2
    assert {p for c in first for p in c.parents} <= {"c1ccccc1O", "CCN", "OCC=O"}
    assert all(c.origin.startswith("mutation:") for c in first)
    valid = [c for c in first if canonical_smiles(c.representation) is not None]
    assert len(valid) >= 27
    assert all(c.key == canonical_smiles(c.representation) for c in valid)
