"""E(3)-equivariant denoiser for flow matching over molecules (atoms, positions and bonds).

The generator (:mod:`chem.flow_matching`) moves noise to molecules along straight paths: at time
t in [0, 1] a noisy molecule has heavy-atom positions x_t (n_atoms, 3) Angstrom with zero centre
of mass, continuous atom-class states h_t (n_atoms, n_classes; an element with its hydrogen
count) and continuous bond states e_t (n_pairs, n_bond_types) on every ordered atom pair of a
molecule. This network predicts the clean
molecule from it: positions x_1 (equivariant: rotating and translating x_t rotates and translates
them), and logits of atom types and bond types (invariant). It is a PaiNN-style network
(:class:`pipeline.equivariant.PaiNNInteraction`: scalar and vector features per atom) on the fully connected
graph of each molecule, with edge features from an e3nn radial basis of the distance and the
bond state, conditioned on the time and on property targets (HOMO, LUMO, gap) with a mask for
classifier-free guidance.

With self-conditioning (as in SemlaFlow and MultiFlow), the network also reads its own previous
prediction of the clean molecule: the predicted class and bond probabilities, a radial basis of
the predicted pair distances (invariant) and the displacement x̂_1 - x_t of each atom as a
starting vector feature (equivariant). All of them are zero where there is no previous
prediction, and their input weights start at zero (:func:`add_self_conditioning`), so a network
without self-conditioning carries over unchanged and learns to use them in further training.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from e3nn.math import soft_one_hot_linspace
from torch import nn
from torch_geometric.utils import scatter

from pipeline.equivariant import PaiNNInteraction

ATOM_CLASSES: tuple[tuple[str, int], ...] = (
    ("C", 0), ("C", 1), ("C", 2), ("C", 3), ("C", 4),
    ("N", 0), ("N", 1), ("N", 2), ("N", 3),
    ("O", 0), ("O", 1), ("O", 2),
    ("F", 0),
)
"""Atom classes the generator places, in one-hot order: a heavy element of QM9 with the number
of hydrogens bonded to it (neutral atoms; every (element, hydrogens) pair of the QM9 pool)."""

ATOM_TYPES = tuple(e + ("" if h == 0 else "H" if h == 1 else f"H{h}") for e, h in ATOM_CLASSES)
"""Names of :data:`ATOM_CLASSES` (``C``, ``CH``, ``CH2``, ...)."""

BOND_TYPES = ("none", "single", "double", "triple")
"""Bond classes of an atom pair (Kekulé form), in one-hot order."""


def pair_index(counts: torch.Tensor) -> torch.Tensor:
    """Every ordered pair (i, j), i != j, of atoms of the same molecule.

    Args:
        counts: atoms per molecule (n_molecules,).

    Returns:
        Edge index (2, n_pairs): row 0 receives, row 1 sends; pairs are grouped by molecule.
    """
    rows = []
    start = 0
    for n in counts.tolist():
        idx = torch.arange(start, start + n)
        i, j = torch.meshgrid(idx, idx, indexing="ij")
        keep = i != j
        rows.append(torch.stack([i[keep], j[keep]]))
        start += n
    if not rows:
        return torch.zeros(2, 0, dtype=torch.long)
    return torch.cat(rows, dim=1)


def time_features(t: torch.Tensor, n: int = 8) -> torch.Tensor:
    """Sinusoidal features of the time, (n_molecules,) -> (n_molecules, 2 n + 1)."""
    freq = torch.arange(1, n + 1, dtype=t.dtype, device=t.device) * math.pi
    return torch.cat([t[:, None], torch.sin(freq * t[:, None]), torch.cos(freq * t[:, None])], -1)


class FlowDenoiser(nn.Module):
    """Predicts the clean molecule (positions, atom-type logits, bond logits) from a noisy one.

    Args:
        n_atom_types: atom classes (:data:`ATOM_TYPES`).
        n_bond_types: bond classes (:data:`BOND_TYPES`).
        n_conditions: property targets it can be conditioned on.
        features: width of scalar and vector features.
        n_layers: interaction blocks.
        n_rbf: radial basis functions of the distance (0 to ``max_distance``).
        max_distance: range of the radial basis, Angstrom.
        self_condition: the network reads its previous prediction (``previous`` of
            :meth:`forward`).
    """

    def __init__(self, n_atom_types: int = len(ATOM_TYPES), n_bond_types: int = len(BOND_TYPES),
                 n_conditions: int = 3, features: int = 128, n_layers: int = 6, n_rbf: int = 32,
                 max_distance: float = 8.0, self_condition: bool = False) -> None:
        super().__init__()
        self.n_atom_types, self.n_bond_types, self.n_conditions = (n_atom_types, n_bond_types,
                                                                   n_conditions)
        self.features, self.n_rbf, self.max_distance = features, n_rbf, max_distance
        self.self_condition = self_condition
        n_time = 2 * 8 + 1
        # inputs of a previous prediction go last, so that add_self_conditioning appends columns
        atoms_in = n_atom_types + n_time + 2 * n_conditions + (n_atom_types if self_condition
                                                               else 0)
        self.embed_atoms = nn.Sequential(nn.Linear(atoms_in, features), nn.SiLU(),
                                         nn.Linear(features, features))
        edge_in = n_rbf + n_bond_types + (n_rbf + n_bond_types if self_condition else 0)
        if self_condition:
            self.previous_shift = nn.Parameter(torch.zeros(features))
        self.embed_edges = nn.Sequential(nn.Linear(edge_in, features), nn.SiLU(),
                                         nn.Linear(features, features))
        self.layers = nn.ModuleList(PaiNNInteraction(features, features) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(features) for _ in range(n_layers))
        self.atom_head = nn.Sequential(nn.Linear(features, features), nn.SiLU(),
                                       nn.Linear(features, n_atom_types))
        self.position_head = nn.Linear(features, 1, bias=False)
        self.bond_head = nn.Sequential(nn.Linear(2 * features + edge_in, features), nn.SiLU(),
                                       nn.Linear(features, n_bond_types))

    def __repr__(self) -> str:
        return (f"FlowDenoiser(features={self.features}, n_layers={len(self.layers)}, "
                f"n_conditions={self.n_conditions}, self_condition={self.self_condition})")

    def _radial(self, dist: torch.Tensor) -> torch.Tensor:
        """Gaussian radial basis of distances (Angstrom), (...) -> (..., n_rbf)."""
        return soft_one_hot_linspace(dist, 0.0, self.max_distance, self.n_rbf, basis="gaussian",
                                     cutoff=False)

    def forward(self, x_t: torch.Tensor, h_t: torch.Tensor, e_t: torch.Tensor,
                edges: torch.Tensor, batch: torch.Tensor, t: torch.Tensor,
                condition: torch.Tensor, condition_mask: torch.Tensor,
                previous: Prediction | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One prediction.

        Args:
            x_t: (n_atoms, 3) noisy positions, Angstrom, zero centre of mass per molecule.
            h_t: (n_atoms, n_atom_types) noisy atom-type states.
            e_t: (n_pairs, n_bond_types) noisy bond states, equal for (i, j) and (j, i).
            edges: (2, n_pairs) ordered pairs from :func:`pair_index`.
            batch: (n_atoms,) molecule of each atom, sorted.
            t: (n_molecules,) time in [0, 1].
            condition: (n_molecules, n_conditions) standardised property targets.
            condition_mask: (n_molecules, n_conditions) 1 where a target is given, 0 where not
                (classifier-free guidance drops targets by zeroing the mask).
            previous: the network's previous prediction of the clean molecule (self-conditioning;
                ignored by a network without it); None: none yet.

        Returns:
            x_1 (n_atoms, 3) predicted clean positions (same centre of mass as x_t), atom-type
            logits (n_atoms, n_atom_types) and bond logits (n_pairs, n_bond_types), symmetric
            in the pair.
        """
        receiver, sender = edges
        n_molecules = t.shape[0]
        counts = torch.bincount(batch, minlength=n_molecules)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(batch), device=batch.device) - starts[batch]
        n_max = int(counts.max()) if len(batch) else 0
        # dense (molecule, slot) layout; padding atoms and absent pairs are masked out
        x = x_t.new_zeros(n_molecules, n_max, 3)
        x[batch, slot] = x_t
        pair_mask = x_t.new_zeros(n_molecules, n_max, n_max)
        mol, r_slot, s_slot = batch[receiver], slot[receiver], slot[sender]
        pair_mask[mol, r_slot, s_slot] = 1.0
        vec = x[:, None, :, :] - x[:, :, None, :]  # (B, N, N, 3): from i to j
        dist = vec.norm(dim=-1)
        unit = vec / dist.clamp_min(1e-6)[..., None]
        rbf = self._radial(dist)
        e = e_t.new_zeros(n_molecules, n_max, n_max, e_t.shape[-1])
        e[mol, r_slot, s_slot] = e_t
        cond = torch.cat([condition * condition_mask, condition_mask], dim=-1)
        per_molecule = torch.cat([time_features(t), cond], dim=-1)
        atoms_in = [h_t, per_molecule[batch]]
        edge_parts = [rbf, e]
        v = x.new_zeros(n_molecules, n_max, 3, self.features)
        if self.self_condition:
            prev_h = x_t.new_zeros(h_t.shape)
            prev_e = e.new_zeros(e.shape)
            prev_rbf = rbf.new_zeros(rbf.shape)
            if previous is not None:
                prev_h = previous.atom_probs
                prev_e[mol, r_slot, s_slot] = previous.bond_probs
                x_prev = x.new_zeros(x.shape)
                x_prev[batch, slot] = previous.positions
                d_prev = (x_prev[:, None, :, :] - x_prev[:, :, None, :]).norm(dim=-1)
                prev_rbf = self._radial(d_prev)
                shift_prev = x.new_zeros(x.shape)
                shift_prev[batch, slot] = previous.positions - x_t
                v = shift_prev[..., None] * self.previous_shift  # (B, N, 3, F), equivariant
            atoms_in.append(prev_h)
            edge_parts += [prev_rbf, prev_e]
        edge_in = torch.cat(edge_parts, dim=-1)
        edge = self.embed_edges(edge_in)
        s_atoms = self.embed_atoms(torch.cat(atoms_in, dim=-1))
        s = s_atoms.new_zeros(n_molecules, n_max, s_atoms.shape[-1])
        s[batch, slot] = s_atoms
        for layer, norm in zip(self.layers, self.norms, strict=True):
            assert isinstance(layer, PaiNNInteraction)
            s, v = layer.forward_dense(s, v, pair_mask, edge, unit)
            s = norm(s)
        s_atoms = s[batch, slot]
        shift = self.position_head(v[batch, slot]).squeeze(-1)  # (n_atoms, 3), equivariant
        shift = shift - scatter(shift, batch, dim=0, dim_size=n_molecules, reduce="mean")[batch]
        atom_logits = self.atom_head(s_atoms)
        pair = torch.cat([s_atoms[receiver] + s_atoms[sender], s_atoms[receiver] * s_atoms[sender],
                          edge_in[mol, r_slot, s_slot]], dim=-1)
        bond_logits = self.bond_head(pair)
        return x_t + shift, atom_logits, bond_logits


class Prediction(NamedTuple):
    """A denoiser's prediction of the clean molecule, as read back by self-conditioning.

    Attributes:
        positions: (n_atoms, 3) predicted clean positions, Angstrom.
        atom_probs: (n_atoms, n_atom_types) predicted class probabilities.
        bond_probs: (n_pairs, n_bond_types) predicted bond probabilities.
    """

    positions: torch.Tensor
    atom_probs: torch.Tensor
    bond_probs: torch.Tensor


def add_self_conditioning(state: dict[str, torch.Tensor], n_atom_types: int, n_bond_types: int,
                          n_rbf: int) -> dict[str, torch.Tensor]:
    """Weights of a network without self-conditioning, widened for one with it.

    The input columns of the previous prediction and the weight of its displacement vector are
    zero, so the widened network computes exactly what the original did.

    Args:
        state: ``state_dict`` of a :class:`FlowDenoiser` with ``self_condition=False``.
        n_atom_types: atom classes.
        n_bond_types: bond classes.
        n_rbf: radial basis functions.

    Returns:
        A ``state_dict`` for the same network with ``self_condition=True``.
    """
    def widened(weight: torch.Tensor, extra: int) -> torch.Tensor:
        return torch.cat([weight, weight.new_zeros(weight.shape[0], extra)], dim=1)

    out = dict(state)
    out["embed_atoms.0.weight"] = widened(state["embed_atoms.0.weight"], n_atom_types)
    out["embed_edges.0.weight"] = widened(state["embed_edges.0.weight"], n_rbf + n_bond_types)
    out["bond_head.0.weight"] = widened(state["bond_head.0.weight"], n_rbf + n_bond_types)
    out["previous_shift"] = state["embed_atoms.0.weight"].new_zeros(
        state["embed_atoms.2.weight"].shape[0])
    return out


def add_conditions(state: dict[str, torch.Tensor], n_atom_types: int, n_old: int,
                   n_new: int) -> dict[str, torch.Tensor]:
    """Weights of a network conditioned on ``n_old`` properties, widened for ``n_old + n_new``
    (new properties appended, such as the orbital-location descriptors).

    The atom embedding reads [atom types, time features, targets times mask, mask, previous
    prediction]; zero columns are inserted after the old targets and after the old mask, so the
    widened network computes exactly what the original did until it is trained on the new
    properties' labels.

    Args:
        state: ``state_dict`` of a :class:`FlowDenoiser` with ``n_conditions=n_old``.
        n_atom_types: atom classes.
        n_old: properties it is conditioned on.
        n_new: properties to add.

    Returns:
        A ``state_dict`` for the same network with ``n_conditions=n_old + n_new``.
    """
    weight = state["embed_atoms.0.weight"]
    start = n_atom_types + 2 * 8 + 1  # the targets' first column (after types and time)
    zeros = weight.new_zeros(weight.shape[0], n_new)
    widened = torch.cat([weight[:, :start + n_old], zeros,
                         weight[:, start + n_old:start + 2 * n_old], zeros,
                         weight[:, start + 2 * n_old:]], dim=1)
    return {**state, "embed_atoms.0.weight": widened}
