"""The generator's denoiser is E(3)-equivariant and permutation-equivariant."""

from __future__ import annotations

import math

import pytest
import torch

from chem.flow_model import (
    ATOM_CLASSES,
    BOND_TYPES,
    FlowDenoiser,
    Prediction,
    add_self_conditioning,
    pair_index,
)


def _rotation(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return q * torch.sign(torch.linalg.det(q))


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    counts = torch.tensor([5, 3])
    batch = torch.repeat_interleave(torch.arange(2), counts)
    x = torch.randn(8, 3, dtype=torch.float64)
    x = x - torch.zeros(2, 3, dtype=torch.float64).index_add_(0, batch, x)[batch] / counts[batch, None]
    edges = pair_index(counts)
    e = torch.randn(edges.shape[1], len(BOND_TYPES), dtype=torch.float64)
    # bond states are symmetric: (i, j) and (j, i) share one
    key = {(int(i), int(j)): k for k, (i, j) in enumerate(edges.T.tolist())}
    for k, (i, j) in enumerate(edges.T.tolist()):
        e[k] = e[key[(min(i, j), max(i, j))]]
    return {"x": x, "h": torch.randn(8, len(ATOM_CLASSES), dtype=torch.float64), "e": e, "edges": edges,
            "batch": batch, "t": torch.tensor([0.3, 0.8], dtype=torch.float64),
            "c": torch.randn(2, 3, dtype=torch.float64),
            "m": torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)}


@pytest.fixture(scope="module")
def net() -> FlowDenoiser:
    torch.manual_seed(1)
    return FlowDenoiser(features=16, n_layers=2, n_rbf=8).double().eval()


def _run(net: FlowDenoiser, d: dict[str, torch.Tensor], x: torch.Tensor | None = None,
         previous: Prediction | None = None):
    with torch.no_grad():
        return net(d["x"] if x is None else x, d["h"], d["e"], d["edges"], d["batch"], d["t"],
                   d["c"], d["m"], previous)


def test_positions_rotate_and_translate_with_the_input_and_logits_do_not_change(net, inputs):
    x1, atoms, bonds = _run(net, inputs)
    for seed in range(3):
        rot = _rotation(seed)
        shift = torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64)
        x1_moved, atoms_moved, bonds_moved = _run(net, inputs, inputs["x"] @ rot.T + shift)
        torch.testing.assert_close(x1_moved, x1 @ rot.T + shift, atol=1e-4, rtol=0)
        torch.testing.assert_close(atoms_moved, atoms, atol=1e-4, rtol=0)
        torch.testing.assert_close(bonds_moved, bonds, atol=1e-4, rtol=0)
    mirrored = inputs["x"] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    x1_m, _, _ = _run(net, inputs, mirrored)  # E(3): reflections too
    torch.testing.assert_close(x1_m, x1 * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64),
                               atol=1e-4, rtol=0)


def test_permuting_atoms_permutes_the_outputs(net, inputs):
    x1, atoms, bonds = _run(net, inputs)
    perm = torch.tensor([3, 0, 4, 1, 2, 6, 7, 5])  # within each molecule
    edges = inputs["edges"]
    lookup = {(int(i), int(j)): k for k, (i, j) in enumerate(edges.T.tolist())}
    order = torch.tensor([lookup[(int(perm[i]), int(perm[j]))]
                          for i, j in pair_index(torch.tensor([5, 3])).T.tolist()])
    permuted = dict(inputs, x=inputs["x"][perm], h=inputs["h"][perm], e=inputs["e"][order],
                    edges=pair_index(torch.tensor([5, 3])))
    x1_p, atoms_p, bonds_p = _run(net, permuted)
    torch.testing.assert_close(x1_p, x1[perm], atol=1e-6, rtol=0)
    torch.testing.assert_close(atoms_p, atoms[perm], atol=1e-6, rtol=0)
    torch.testing.assert_close(bonds_p, bonds[order], atol=1e-6, rtol=0)


def test_bond_logits_are_symmetric_and_centre_of_mass_is_kept(net, inputs):
    x1, _, bonds = _run(net, inputs)
    lookup = {(int(i), int(j)): k for k, (i, j) in enumerate(inputs["edges"].T.tolist())}
    for (i, j), k in lookup.items():
        torch.testing.assert_close(bonds[k], bonds[lookup[(j, i)]], atol=1e-6, rtol=0)
    com = torch.zeros(2, 3, dtype=torch.float64).index_add_(0, inputs["batch"], x1)
    assert float(com.abs().max()) < 1e-9
    assert math.isfinite(float(x1.sum()))


@pytest.fixture(scope="module")
def self_conditioned() -> FlowDenoiser:
    torch.manual_seed(2)
    net = FlowDenoiser(features=16, n_layers=2, n_rbf=8, self_condition=True).double().eval()
    with torch.no_grad():  # the weights of the previous prediction start at zero: wake them up
        net.previous_shift.normal_()
        for name in ("embed_atoms", "embed_edges", "bond_head"):
            getattr(net, name)[0].weight.normal_(std=0.3)
    return net


def _previous(d: dict[str, torch.Tensor]) -> Prediction:
    gen = torch.Generator().manual_seed(3)
    return Prediction(d["x"] + 0.3 * torch.randn(d["x"].shape, generator=gen, dtype=torch.float64),
                      torch.rand(d["h"].shape, generator=gen, dtype=torch.float64),
                      d["e"].abs())


def test_self_conditioned_outputs_rotate_with_the_input_and_the_previous_prediction(
    self_conditioned, inputs,
):
    prev = _previous(inputs)
    x1, atoms, bonds = _run(self_conditioned, inputs, previous=prev)
    x1_none, _, _ = _run(self_conditioned, inputs)
    assert float((x1 - x1_none).abs().max()) > 1e-3  # the previous prediction is read
    rot = _rotation(5)
    shift = torch.tensor([0.4, 1.0, -3.0], dtype=torch.float64)
    moved = prev._replace(positions=prev.positions @ rot.T + shift)
    x1_m, atoms_m, bonds_m = _run(self_conditioned, inputs, inputs["x"] @ rot.T + shift, moved)
    torch.testing.assert_close(x1_m, x1 @ rot.T + shift, atol=1e-4, rtol=0)
    torch.testing.assert_close(atoms_m, atoms, atol=1e-4, rtol=0)
    torch.testing.assert_close(bonds_m, bonds, atol=1e-4, rtol=0)
    perm = torch.tensor([3, 0, 4, 1, 2, 6, 7, 5])
    edges = inputs["edges"]
    lookup = {(int(i), int(j)): k for k, (i, j) in enumerate(edges.T.tolist())}
    order = torch.tensor([lookup[(int(perm[i]), int(perm[j]))]
                          for i, j in pair_index(torch.tensor([5, 3])).T.tolist()])
    permuted = dict(inputs, x=inputs["x"][perm], h=inputs["h"][perm], e=inputs["e"][order])
    prev_p = Prediction(prev.positions[perm], prev.atom_probs[perm], prev.bond_probs[order])
    x1_p, atoms_p, bonds_p = _run(self_conditioned, permuted, previous=prev_p)
    torch.testing.assert_close(x1_p, x1[perm], atol=1e-6, rtol=0)
    torch.testing.assert_close(atoms_p, atoms[perm], atol=1e-6, rtol=0)
    torch.testing.assert_close(bonds_p, bonds[order], atol=1e-6, rtol=0)


def test_a_network_widened_for_self_conditioning_computes_what_it_did(net, inputs):
    widened = FlowDenoiser(features=16, n_layers=2, n_rbf=8, self_condition=True).double().eval()
    widened.load_state_dict(add_self_conditioning(net.state_dict(), len(ATOM_CLASSES),
                                                  len(BOND_TYPES), 8))
    before = _run(net, inputs)
    for previous in (None, _previous(inputs)):
        for a, b in zip(before, _run(widened, inputs, previous=previous), strict=True):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
