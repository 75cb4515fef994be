"""Equivariant building blocks shared by the domains' networks (molecules and crystals).

PaiNN (Schütt, Unke and Gastegger, ICML 2021): scalar features s (n_atoms, F) and vector features
v (n_atoms, 3, F) updated by messages built from interatomic distances (invariant) and unit
vectors (equivariant). The blocks read edges as (receiver, sender) pairs with their vectors, so a
molecule (pairs inside a cutoff) and a periodic crystal (pairs to periodic images inside a
cutoff) use the same layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.utils import scatter


class RadialBasis(nn.Module):
    """sin(n pi r / r_c) / r expansion of distances with a cosine cutoff envelope."""

    freq: torch.Tensor

    def __init__(self, n_rbf: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("freq", torch.arange(1, n_rbf + 1, dtype=torch.float32) * math.pi)

    def forward(self, dist: torch.Tensor) -> torch.Tensor:
        """(n_edges,) Angstrom -> (n_edges, n_rbf)."""
        d = dist[:, None]
        envelope = 0.5 * (torch.cos(math.pi * d / self.cutoff) + 1.0)
        return torch.sin(self.freq * d / self.cutoff) / d * envelope


class PaiNNInteraction(nn.Module):
    """Message then update block of PaiNN for F features."""

    def __init__(self, features: int, n_rbf: int) -> None:
        super().__init__()
        self.features = features
        self.phi = nn.Sequential(nn.Linear(features, features), nn.SiLU(),
                                 nn.Linear(features, 3 * features))
        self.filter = nn.Linear(n_rbf, 3 * features)
        self.mix_u = nn.Linear(features, features, bias=False)
        self.mix_v = nn.Linear(features, features, bias=False)
        self.update = nn.Sequential(nn.Linear(2 * features, features), nn.SiLU(),
                                    nn.Linear(features, 3 * features))

    def reset_parameters(self) -> None:
        """Re-initialises every linear layer."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def forward(self, s: torch.Tensor, v: torch.Tensor, edges: torch.Tensor,
                rbf: torch.Tensor, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One interaction.

        Args:
            s: (n_atoms, F) scalar features.
            v: (n_atoms, 3, F) vector features.
            edges: (2, n_edges) receiver, sender.
            rbf: (n_edges, n_rbf) radial basis of the edge lengths.
            unit: (n_edges, 3) unit vectors from receiver to sender.

        Returns:
            Updated s (n_atoms, F) and v (n_atoms, 3, F).
        """
        f = self.features
        receiver, sender = edges
        x = self.phi(s)[sender] * self.filter(rbf)
        x_s, x_vv, x_vs = x.split(f, dim=-1)
        dv_edge = x_vv[:, None, :] * v[sender] + x_vs[:, None, :] * unit[:, :, None]
        s = s + scatter(x_s, receiver, dim=0, dim_size=s.shape[0])
        v = v + scatter(dv_edge, receiver, dim=0, dim_size=s.shape[0])
        uv, vv = self.mix_u(v), self.mix_v(v)
        norm = torch.sqrt((vv**2).sum(dim=1) + 1e-8)
        a_vv, a_sv, a_ss = self.update(torch.cat([s, norm], dim=-1)).split(f, dim=-1)
        v = v + a_vv[:, None, :] * uv
        s = s + a_sv * (uv * vv).sum(dim=1) + a_ss
        return s, v

    def forward_dense(self, s: torch.Tensor, v: torch.Tensor, pair_mask: torch.Tensor,
                      rbf: torch.Tensor, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same interaction on molecules padded to N atoms, each fully connected.

        Small molecules whose atoms all see each other (a generator's graphs) are cheaper this
        way: sums over neighbours become batched contractions instead of gathers and
        scatters over every ordered pair.

        Args:
            s: (B, N, F) scalar features.
            v: (B, N, 3, F) vector features.
            pair_mask: (B, N, N) 1 where j sends to i, else 0 (padding, i = j).
            rbf: (B, N, N, n_rbf) edge features of pair (i, j).
            unit: (B, N, N, 3) unit vectors from i to j.

        Returns:
            Updated s (B, N, F) and v (B, N, 3, F).
        """
        f = self.features
        x = self.phi(s)[:, None, :, :] * self.filter(rbf) * pair_mask[..., None]
        x_s, x_vv, x_vs = x.split(f, dim=-1)
        s = s + x_s.sum(dim=2)
        v = (v + torch.einsum("bijf,bjcf->bicf", x_vv, v)
             + torch.einsum("bijf,bijc->bicf", x_vs, unit))
        uv, vv = self.mix_u(v), self.mix_v(v)
        norm = torch.sqrt((vv**2).sum(dim=2) + 1e-8)
        a_vv, a_sv, a_ss = self.update(torch.cat([s, norm], dim=-1)).split(f, dim=-1)
        v = v + a_vv[:, :, None, :] * uv
        s = s + a_sv * (uv * vv).sum(dim=2) + a_ss
        return s, v
