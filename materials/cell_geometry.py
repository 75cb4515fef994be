"""Geometry of periodic cells in fractional coordinates on the flat torus, in torch, for the
crystal generator's network and sampler: site pairs, shortest differences, metric tensors of
encoded lattices, and the separation of sites that sampling has driven onto one point."""

from __future__ import annotations

import math

import torch
from torch_geometric.utils import scatter


def pair_edges(counts: torch.Tensor) -> torch.Tensor:
    """(2, sum n(n-1)) all ordered pairs i != j of sites within each cell."""
    edges, start = [], 0
    for n in counts.tolist():
        idx = torch.arange(n) + start
        i, j = torch.meshgrid(idx, idx, indexing="ij")
        keep = i != j
        edges.append(torch.stack([i[keep], j[keep]]))
        start += n
    return torch.cat(edges, dim=1) if edges else torch.zeros(2, 0, dtype=torch.long)


def wrap(d: torch.Tensor) -> torch.Tensor:
    """The shortest periodic difference: d - round(d), in [-0.5, 0.5]."""
    return d - torch.round(d)


def metric_tensors(lattice_vectors: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """(g, 3, 3) metric tensors G (Angstrom^2) of cells given as their
    :func:`~materials.cell_encoding.lattice_vector` (g, 6) with ``sizes`` (g,) sites each (the
    torch counterpart of :func:`~materials.cell_encoding.lattice_from_vector`): the squared
    length of a fractional difference d is d^T G d."""
    lengths = torch.exp(lattice_vectors[:, :3] + torch.log(sizes.to(lattice_vectors))[:, None] / 3)
    cosines = torch.cos(lattice_vectors[:, 3:].clamp(math.radians(30.0), math.radians(150.0)))
    a, b, c = lengths.unbind(-1)
    ca, cb, cg = cosines.unbind(-1)
    return torch.stack([
        torch.stack([a * a, a * b * cg, a * c * cb], -1),
        torch.stack([a * b * cg, b * b, b * c * ca], -1),
        torch.stack([a * c * cb, b * c * ca, c * c], -1)], -2)


def separate_sites(frac: torch.Tensor, metric: torch.Tensor, batch: torch.Tensor,
                   edges: torch.Tensor, min_distance: float) -> torch.Tensor:
    """Pushes apart the sites of each pair closer than ``min_distance`` (Angstrom), each by half
    the shortfall along the line joining them. The pair's image is the nearest in fractional
    coordinates (:func:`wrap`), the shortest one unless the cell is strongly sheared.

    Args:
        frac: (n, 3) fractional coordinates in [0, 1).
        metric: (g, 3, 3) metric tensors of the cells (:func:`metric_tensors`).
        batch: (n,) cell of each site.
        edges: (2, e) ordered site pairs within each cell (:func:`pair_edges`).
        min_distance: Angstrom.

    Returns:
        (n, 3) fractional coordinates in [0, 1); sites of no close pair are unchanged.
    """
    i, j = edges
    d = wrap(frac[j] - frac[i])
    r2 = torch.einsum("ea,eab,eb->e", d, metric[batch[i]], d)
    r = r2.clamp_min(0).sqrt()
    # no push where the metric is not positive definite (an impossible mid-flow lattice gives
    # no distance); a pair moves at most min_distance / 2 each (r below 1e-3 A is taken as it)
    close = (r2 > 0) & (r < min_distance)
    push = torch.where(close, 0.5 * (min_distance / r.clamp_min(1e-3) - 1.0),
                       torch.zeros_like(r))
    shift = scatter(-push[:, None] * d, i, dim=0, dim_size=len(frac), reduce="sum")
    return torch.remainder(frac + shift, 1.0)
