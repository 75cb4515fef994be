"""PaiNN predictions are invariant to rotation, translation, reflection and atom order."""

from __future__ import annotations

import pytest
import torch
from scipy.spatial.transform import Rotation

from chem.painn import PaiNN, PaiNNInteraction, radius_edges

Z = torch.tensor([6, 8, 1, 1, 7, 6, 1, 1, 1, 9])
BATCH = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])


def _model() -> PaiNN:
    torch.manual_seed(0)
    return PaiNN(n_outputs=3, features=16, n_layers=2, n_rbf=8, cutoff=4.0).double()


def _pos() -> torch.Tensor:
    return torch.randn(len(Z), 3, generator=torch.Generator().manual_seed(3),
                       dtype=torch.float64) * 1.2


def test_outputs_do_not_change_under_rotation_translation_and_reflection() -> None:
    model, pos = _model(), _pos()
    mean, var = model(Z, pos, BATCH)
    rot = torch.tensor(Rotation.random(random_state=1).as_matrix())
    for moved in (pos @ rot.T + torch.tensor([3.0, -1.0, 2.0]), -pos):
        mean2, var2 = model(Z, moved, BATCH)
        torch.testing.assert_close(mean2, mean, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(var2, var, atol=1e-10, rtol=1e-10)
    assert mean.shape == (2, 3) and bool((var > 0).all())


def test_outputs_do_not_depend_on_atom_order_within_a_molecule() -> None:
    model, pos = _model(), _pos()
    mean, _ = model(Z, pos, BATCH)
    order = torch.tensor([3, 1, 0, 2, 9, 5, 4, 8, 6, 7])
    mean2, _ = model(Z[order], pos[order], BATCH[order])
    torch.testing.assert_close(mean2, mean, atol=1e-10, rtol=1e-10)


def test_edges_stay_inside_molecules_and_within_the_cutoff() -> None:
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [9.0, 0, 0], [0.5, 0, 0]])
    edges = radius_edges(pos, torch.tensor([0, 0, 0, 1]), cutoff=2.0)
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (1, 0)]


def test_unknown_elements_are_named() -> None:
    with pytest.raises(ValueError, match=r"got atomic numbers \[17\]"):
        _model()(torch.tensor([6, 17]), torch.zeros(2, 3, dtype=torch.float64).add(
            torch.tensor([[0.0, 0, 0], [1.7, 0, 0]], dtype=torch.float64)), torch.tensor([0, 0]))
    assert repr(_model()) == "PaiNN(n_outputs=3, features=16, n_layers=2, cutoff=4.0)"


def test_dense_interaction_equals_the_pair_list_one() -> None:
    torch.manual_seed(0)
    layer = PaiNNInteraction(8, 5)
    counts = [3, 1, 4]  # padded to 4 atoms; molecule 1 has no pairs
    n_max = max(counts)
    s_dense = torch.randn(3, n_max, 8)
    v_dense = torch.randn(3, n_max, 3, 8)
    rbf_dense = torch.randn(3, n_max, n_max, 5)
    unit_dense = torch.randn(3, n_max, n_max, 3)
    mask = torch.zeros(3, n_max, n_max)
    atoms = [(b, i) for b, n in enumerate(counts) for i in range(n)]
    index = {a: k for k, a in enumerate(atoms)}
    pairs = [(b, i, j) for b, n in enumerate(counts) for i in range(n) for j in range(n) if i != j]
    for b, i, j in pairs:
        mask[b, i, j] = 1.0
    s = torch.stack([s_dense[b, i] for b, i in atoms])
    v = torch.stack([v_dense[b, i] for b, i in atoms])
    edges = torch.tensor([[index[(b, i)] for b, i, _ in pairs], [index[(b, j)] for b, _, j in pairs]])
    rbf = torch.stack([rbf_dense[b, i, j] for b, i, j in pairs])
    unit = torch.stack([unit_dense[b, i, j] for b, i, j in pairs])
    s_ref, v_ref = layer(s, v, edges, rbf, unit)
    s_out, v_out = layer.forward_dense(s_dense, v_dense, mask, rbf_dense, unit_dense)
    torch.testing.assert_close(torch.stack([s_out[b, i] for b, i in atoms]), s_ref)
    torch.testing.assert_close(torch.stack([v_out[b, i] for b, i in atoms]), v_ref)
