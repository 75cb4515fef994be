"""PaiNN: an E(3)-equivariant message-passing network for molecular properties.

Schütt, Unke and Gastegger, "Equivariant message passing for the prediction of tensorial
properties and molecular spectra", ICML 2021. Scalar features s (n_atoms, F) and vector features
v (n_atoms, 3, F) are updated by messages built from interatomic distances (invariant) and unit
vectors (equivariant), so predicted scalars do not change under rotation, translation, reflection
or atom reordering.

Each output is a Gaussian: the network predicts a mean and a variance per property (trained by
Gaussian negative log-likelihood), and a deep ensemble of such networks gives the epistemic part
of the uncertainty (:class:`chem.property_model.PropertyEnsemble`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from pipeline.equivariant import PaiNNInteraction, RadialBasis

ELEMENTS = (1, 6, 7, 8, 9)
"""Atomic numbers the network knows (H, C, N, O, F: the QM9 elements)."""


def radius_edges(pos: torch.Tensor, batch: torch.Tensor, cutoff: float) -> torch.Tensor:
    """All ordered atom pairs of the same molecule closer than ``cutoff``.

    Args:
        pos: (n_atoms, 3) Angstrom.
        batch: (n_atoms,) molecule index of each atom, sorted.
        cutoff: Angstrom.

    Returns:
        Edge index (2, n_edges): row 0 receives, row 1 sends.
    """
    same = batch[:, None] == batch[None, :]
    close = torch.cdist(pos, pos) < cutoff
    mask = same & close
    mask.fill_diagonal_(False)
    return torch.nonzero(mask).T


class PaiNN(nn.Module):
    """PaiNN predicting a Gaussian (mean, variance) per molecular property.

    Args:
        n_outputs: number of properties.
        features: F, the width of scalar and vector features.
        n_layers: interaction blocks.
        n_rbf: radial basis functions.
        cutoff: interaction cutoff, Angstrom.
    """

    z_to_index: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(self, n_outputs: int = 3, features: int = 64, n_layers: int = 3,
                 n_rbf: int = 20, cutoff: float = 5.0) -> None:
        super().__init__()
        self.n_outputs, self.features, self.cutoff = n_outputs, features, cutoff
        self.register_buffer("z_to_index", torch.full((100,), -1, dtype=torch.long))
        for i, z in enumerate(ELEMENTS):
            self.z_to_index[z] = i
        self.embedding = nn.Embedding(len(ELEMENTS), features)
        self.rbf = RadialBasis(n_rbf, cutoff)
        self.layers = nn.ModuleList(PaiNNInteraction(features, n_rbf) for _ in range(n_layers))
        self.readout = nn.Sequential(nn.Linear(features, features), nn.SiLU(),
                                     nn.Linear(features, 2 * n_outputs))
        self.register_buffer("y_mean", torch.zeros(n_outputs))
        self.register_buffer("y_std", torch.ones(n_outputs))

    def __repr__(self) -> str:
        return (f"PaiNN(n_outputs={self.n_outputs}, features={self.features}, "
                f"n_layers={len(self.layers)}, cutoff={self.cutoff})")

    def reset_parameters(self) -> None:
        """Re-initialises all weights."""
        self.embedding.reset_parameters()
        for layer in self.layers:
            assert isinstance(layer, PaiNNInteraction)
            layer.reset_parameters()
        for module in self.readout:
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def atom_features(self, z: torch.Tensor, pos: torch.Tensor,
                      batch: torch.Tensor) -> torch.Tensor:
        """The invariant (scalar) features of every atom after the interaction blocks.

        Args:
            z: (n_atoms,) atomic numbers.
            pos: (n_atoms, 3) Angstrom.
            batch: (n_atoms,) molecule index, sorted, 0..n_molecules-1.

        Returns:
            (n_atoms, features).

        Raises:
            ValueError: an element the network does not know.
        """
        index = self.z_to_index[z]
        if bool((index < 0).any()):
            unknown = sorted(set(z[index < 0].tolist()))
            raise ValueError(f"PaiNN knows elements {ELEMENTS}, got atomic numbers {unknown}")
        edges = radius_edges(pos, batch, self.cutoff)
        vec = pos[edges[1]] - pos[edges[0]]
        dist = vec.norm(dim=-1)
        rbf, unit = self.rbf(dist), vec / dist[:, None]
        s = self.embedding(index)
        v = torch.zeros(s.shape[0], 3, s.shape[1], dtype=s.dtype, device=s.device)
        for layer in self.layers:
            s, v = layer(s, v, edges, rbf, unit)
        return s

    def forward(self, z: torch.Tensor, pos: torch.Tensor,
                batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicts each molecule's properties.

        Args:
            z: (n_atoms,) atomic numbers.
            pos: (n_atoms, 3) Angstrom.
            batch: (n_atoms,) molecule index, sorted, 0..n_molecules-1.

        Returns:
            Mean and variance, each (n_molecules, n_outputs), in the properties' units.

        Raises:
            ValueError: an element the network does not know.
        """
        s = self.atom_features(z, pos, batch)
        n_molecules = int(batch.max()) + 1 if batch.numel() else 0
        out = scatter(self.readout(s), batch, dim=0, dim_size=n_molecules, reduce="mean")
        mean_std, raw_var = out.split(self.n_outputs, dim=-1)
        mean = mean_std * self.y_std + self.y_mean
        variance = (nn.functional.softplus(raw_var) + 1e-6) * self.y_std**2
        return mean, variance

