"""The flow generator as a campaign component, on a tiny trained checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from chem.flow_data import MoleculeSet, molecules_from_smiles, read_labelled_xyz
from chem.flow_generator import EquivariantFlowGenerator
from chem.flow_matching import FlowGenerator, GeneratorTraining, fine_tune_generator, train_generator
from pipeline.protocols import GenerationContext, ScoredDesign
from pipeline.registry import GENERATORS
from tests.chem.test_flow_matching import MOLECULES, _frame


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MoleculeSet]:
    folder = tmp_path_factory.mktemp("flow")
    xyz = folder / "tiny.xyz"
    xyz.write_text("".join(_frame(*m) for m in MOLECULES))
    data, _ = read_labelled_xyz(xyz)
    path = folder / "gen.pt"
    train_generator(data, GeneratorTraining(features=16, n_layers=2, n_rbf=8, epochs=30,
                                            batch_size=5, learning_rate=3e-3)).save(path)
    return path, data


def _context(condition: dict[str, float] | None = None,
             population: tuple[ScoredDesign, ...] = (),
             bounds: dict[str, tuple[float | None, float | None]] | None = None
             ) -> GenerationContext:
    return GenerationContext(round_index=1, seed=11, population=population,
                             condition=condition or {}, id_prefix="r1-g0-",
                             bounds=bounds or {})


def test_every_sample_is_proposed_and_invalid_ones_keep_their_graph(
    tiny: tuple[Path, MoleculeSet],
) -> None:
    generator = GENERATORS.build("equivariant_flow", {"weights": str(tiny[0]), "steps": 8})
    proposals = generator.sample(30, context=_context({"gap_ev": 9.0}))
    assert len(proposals) == 30
    assert [p.id for p in proposals[:2]] == ["r1-g0-0000", "r1-g0-0001"]
    assert all(p.representation and p.origin == "equivariant_flow" for p in proposals)
    assert generator.reference_keys() == frozenset(tiny[1].smiles.tolist())
    again = generator.sample(30, context=_context({"gap_ev": 9.0}))
    assert [p.key for p in again] == [p.key for p in proposals]  # same seed, same molecules


def test_condition_comes_from_the_campaign_unless_configured(tiny: tuple[Path, MoleculeSet]) -> None:
    campaign = EquivariantFlowGenerator(EquivariantFlowGenerator.Params(weights=str(tiny[0])))
    assert campaign.condition(_context({"gap_ev": 6.5, "dipole_debye": 2.0})) == {"gap_ev": 6.5}
    fixed = EquivariantFlowGenerator(EquivariantFlowGenerator.Params(
        weights=str(tiny[0]), condition={"lumo_ev": 0.5}))
    assert fixed.condition(_context({"gap_ev": 6.5})) == {"lumo_ev": 0.5}
    # an orbital-location objective with a gap window: guidance on the window's middle only
    ct = _context(bounds={"frontier_overlap": (None, 0.45), "gap_ev": (3.0, 5.0)})
    assert campaign.condition(ct) == {"gap_ev": 4.0}
    one_sided = campaign.condition(_context(bounds={"gap_ev": (None, 3.0)}))
    assert one_sided["gap_ev"] < 3.0
    with pytest.raises(ValueError, match=r"condition on \['mu'\]"):
        EquivariantFlowGenerator(EquivariantFlowGenerator.Params(weights=str(tiny[0]),
                                                                 condition={"mu": 1.0}))
    with pytest.raises(ValueError, match=r"no generator checkpoint at /nowhere\.pt"):
        EquivariantFlowGenerator.Params(weights="/nowhere.pt")


def test_fine_tuning_uses_the_measured_molecules_and_keeps_the_checkpoint(
    tiny: tuple[Path, MoleculeSet],
) -> None:
    params = {"weights": str(tiny[0]), "steps": 4, "fine_tune": True, "fine_tune_min_labels": 3,
              "fine_tune_epochs": 3, "fine_tune_learning_rate": 1e-2}
    generator = GENERATORS.build("equivariant_flow", params)
    before = {k: v.clone() for k, v in generator.base.model.state_dict().items()}
    two = tuple(ScoredDesign(s, s, 1.0, {"gap_ev": g}) for s, g in [("CCO", 8.5), ("CC#N", 9.7)])
    generator.sample(3, context=_context(population=two))
    assert generator.generator is generator.base  # too few labels: not fine-tuned
    three = (*two, ScoredDesign("OCC=O", "OCC=O", 0.5, {"gap_ev": 6.0, "homo_ev": -6.8}))
    proposals = generator.sample(3, context=_context(population=three))
    assert generator.generator is not generator.base
    assert all(p.origin == "equivariant_flow+fine_tuned" for p in proposals)
    assert generator.generator.metrics["fine_tuned_on"] == 3
    tuned = generator.generator.model.state_dict()
    assert any(not torch.equal(tuned[k], v) for k, v in before.items())
    for key, value in generator.base.model.state_dict().items():  # the checkpoint is untouched
        torch.testing.assert_close(value, before[key])


def test_campaign_labels_become_training_molecules_with_missing_targets_masked() -> None:
    data, failed = molecules_from_smiles(["CC=O", "not a smiles", "C#N"],
                                         [[np.nan, np.nan, 6.3], [0, 0, 0], [-9.8, 0.5, 10.3]])
    assert failed == ["not a smiles"] and len(data) == 2
    assert np.isnan(data.y[0, 0]) and data.y[0, 2] == pytest.approx(6.3)
    assert len(data.molecule(0)[0]) == 3 and data.molecule(0)[2][:, 2].max() == 2  # C=O


def test_fine_tuning_checks_its_labels(tiny: tuple[Path, MoleculeSet]) -> None:
    generator = FlowGenerator.load(tiny[0])
    one_property = dataclasses.replace(tiny[1].subset([0, 1]), y=np.zeros((2, 1), np.float32))
    with pytest.raises(ValueError, match="labels have 1 properties"):
        fine_tune_generator(generator, one_property)
    with pytest.raises(ValueError, match="at least one molecule"):
        fine_tune_generator(generator, tiny[1].subset([]))
