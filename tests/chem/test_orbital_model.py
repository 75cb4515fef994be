"""Orbital-share network: shares sum to 1 over heavy atoms, invariance, training, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from chem.orbital_model import (
    OrbitalShareEnsemble,
    OrbitalShareNet,
    OrbitalTrainingConfig,
    evaluate,
    share_dataset,
    target_descriptors,
    train_orbital_ensemble,
)
from pipeline.orbital_shares import DESCRIPTORS

# literal labels: every HOMO on the oxygen (or nitrogen) lone pair, every LUMO on the carbons
SMILES = ["CO", "CCO", "CCCO", "OCCO", "CN", "CCN", "NCCO", "CC(C)O", "CCCN", "C1CO1",
          "CC(C)N", "OCC=O"]


def _labels(smiles: str) -> tuple[np.ndarray, np.ndarray]:
    from rdkit import Chem

    symbols = [a.GetSymbol() for a in Chem.MolFromSmiles(smiles).GetAtoms()]
    hetero = np.array([s != "C" for s in symbols], dtype=float)
    carbon = 1.0 - hetero
    return hetero / hetero.sum(), carbon / carbon.sum()


def test_shares_sum_to_one_over_heavy_atoms_and_are_invariant() -> None:
    torch.manual_seed(0)
    net = OrbitalShareNet(features=16, n_layers=2).eval()
    data = share_dataset(["CCO", "c1ccccc1"])
    z, pos = torch.as_tensor(data.z), torch.as_tensor(data.pos)
    batch = torch.repeat_interleave(torch.arange(2), torch.as_tensor(np.diff(data.offsets)))
    shares, _ = net(z, pos, batch)
    assert torch.all(shares[z == 1] == 0)
    sums = torch.zeros(2, 2).index_add_(0, batch, shares)
    torch.testing.assert_close(sums, torch.ones(2, 2))
    rotation = torch.as_tensor(Rotation.random(random_state=1).as_matrix(), dtype=torch.float32)
    moved, _ = net(z, pos @ rotation.T + torch.tensor([3.0, -2.0, 1.0]), batch)
    torch.testing.assert_close(moved, shares, atol=1e-5, rtol=1e-4)
    first = slice(0, int(data.offsets[1]))  # ethanol: reverse its atoms
    order = torch.arange(int(data.offsets[1])).flip(0)
    permuted, _ = net(z[first][order], pos[first][order], batch[first])
    torch.testing.assert_close(permuted, shares[first][order], atol=1e-6, rtol=1e-5)


def test_ensemble_learns_where_the_orbitals_sit_and_round_trips(tmp_path: Path) -> None:
    homo, lumo = zip(*(_labels(s) for s in SMILES), strict=True)
    data = share_dataset(SMILES * 4, list(homo) * 4, list(lumo) * 4, conformers=2)
    config = OrbitalTrainingConfig(features=16, n_layers=2, members=2, epochs=40, batch_size=8,
                                   learning_rate=3e-3, validation_fraction=0.2)
    ensemble = train_orbital_ensemble(data, config)
    assert ensemble.metrics["validation"]["share_mae"] < 0.08
    assert ensemble.metrics["conformers"] == 2
    predicted, failures = ensemble.predict_smiles(["CCCCO", "[Na+]"])
    assert "[Na+]" in failures
    ethanol = predicted["CCCCO"]
    assert ethanol.heavy_symbols == ("C", "C", "C", "C", "O")
    assert ethanol.p_homo.sum() == pytest.approx(1.0, abs=1e-6)
    assert ethanol.p_homo[-1] > 0.7  # the oxygen holds the HOMO
    assert ethanol.descriptors["homo_share_O"][0] > 0.7
    assert ethanol.descriptors["frontier_overlap"][0] < 0.5
    assert ethanol.descriptors["homo_share_N"] == (0.0, 0.0)  # no nitrogen: exactly 0
    path = tmp_path / "orbital.pt"
    ensemble.save(path)
    again = OrbitalShareEnsemble.load(path)
    reloaded = again.predict_smiles(["CCCCO"])[0]["CCCCO"]
    np.testing.assert_allclose(reloaded.p_homo, ethanol.p_homo, atol=5e-3)  # fp16 weights
    metrics, scale = evaluate(again, data)
    assert scale.shape == (2 + len(DESCRIPTORS),)
    assert 0.0 <= metrics["share_coverage90"] <= 1.0
    with pytest.raises(ValueError, match="not an invdes orbital-share checkpoint"):
        torch.save({"format": "other"}, tmp_path / "x.pt")
        OrbitalShareEnsemble.load(tmp_path / "x.pt")


def test_conformers_are_other_embeddings_of_the_same_atoms() -> None:
    one = share_dataset(["CCCCO", "C"])
    data = share_dataset(["CCCCO", "C"], conformers=3)
    assert data.n_conformers == 3 and one.n_conformers == 1
    np.testing.assert_array_equal(data.z, one.z)
    np.testing.assert_array_equal(data.conformer(0), one.pos)  # prediction's embedding first
    assert data.other_pos is not None and data.other_pos.shape == (2, *data.pos.shape)
    butanol = slice(0, int(data.offsets[1]))

    def distances(pos: np.ndarray) -> np.ndarray:
        return np.linalg.norm(pos[:, None] - pos[None], axis=-1)

    # another conformer, not a rigid motion of the first: some interatomic distance changes
    assert np.abs(distances(data.conformer(1)[butanol]) - distances(data.pos[butanol])).max() > 0.1
    np.testing.assert_array_equal(data.conformer(3), data.pos)  # in turn
    methane = data.subset(np.array([1]))
    assert methane.n_conformers == 3 and methane.other_pos is not None
    np.testing.assert_array_equal(methane.other_pos[1], data.other_pos[1][int(data.offsets[1]):])
    with pytest.raises(ValueError, match="conformers must be >= 1"):
        share_dataset(["C"], conformers=0)


def test_targets_leave_out_elements_a_molecule_lacks() -> None:
    data = share_dataset(["CO"], [np.array([0.2, 0.8])], [np.array([0.6, 0.4])])
    y = target_descriptors(data)[0]
    names = list(DESCRIPTORS)
    assert y[names.index("homo_share_O")] == pytest.approx(0.8)
    assert np.isnan(y[names.index("homo_share_N")])
    bad = share_dataset(["CO"], [np.array([1.0])], [np.array([1.0])])
    assert len(bad) == 0 and "1 HOMO and 1 LUMO shares for 2 heavy atoms" in bad.failures["CO"]


def test_overlap_error_is_the_descriptors_frontier_overlap_error() -> None:
    from chem.orbital_model import _overlap_error
    from pipeline.orbital_shares import orbital_descriptors

    data = share_dataset(["CCO", "C=O"], [np.array([0.1, 0.2, 0.7]), np.array([0.3, 0.7])],
                         [np.array([0.6, 0.3, 0.1]), np.array([0.5, 0.5])])
    z = torch.as_tensor(data.z)
    batch = torch.repeat_interleave(torch.arange(2), torch.as_tensor(np.diff(data.offsets)))
    target = torch.as_tensor(data.shares, dtype=torch.float64)
    predicted = torch.nan_to_num(target.clone())
    heavy = (z > 1).numpy()
    predicted[np.flatnonzero(heavy)[:3]] = torch.tensor([[1 / 3, 1 / 3]] * 3,
                                                        dtype=torch.float64)  # ethanol: uniform
    loss = _overlap_error(predicted, target, z, batch, 2)
    ethanol = orbital_descriptors(["C", "C", "O"], np.array([0.1, 0.2, 0.7]),
                                  np.array([0.6, 0.3, 0.1]))["frontier_overlap"]
    assert float(loss) == pytest.approx(abs(1.0 - ethanol) / 2, abs=1e-4)  # formaldehyde exact
    assert float(_overlap_error(torch.nan_to_num(target), target, z, batch, 2)) < 1e-4


def test_training_with_the_overlap_loss_fits_the_overlap() -> None:
    homo, lumo = zip(*(_labels(s) for s in SMILES), strict=True)
    data = share_dataset(SMILES * 4, list(homo) * 4, list(lumo) * 4)
    config = OrbitalTrainingConfig(features=16, n_layers=2, members=2, epochs=40, batch_size=8,
                                   learning_rate=3e-3, validation_fraction=0.2,
                                   overlap_weight=1.0)
    ensemble = train_orbital_ensemble(data, config)
    # every label here has HOMO and LUMO on disjoint atoms: overlap 0; the same training by
    # cross-entropy alone leaves 0.014 (the small shares it spreads), this loss 0.0002
    assert ensemble.metrics["validation"]["frontier_overlap_mae"] < 0.004
    assert ensemble.metrics["validation"]["share_mae"] < 0.08
