"""Periodic crystal graphs: atoms and every pair to a periodic image inside a cutoff.

A structure becomes atomic numbers (n_atoms,) and directed edges (receiver, sender) with their
vectors (n_edges, 3) Angstrom, from the receiver to the sender's periodic image. Distances and
unit vectors of these edges do not depend on the cell's origin, orientation, choice of lattice
vectors or the order of the sites, so a network that reads only them (and the atomic numbers)
predicts invariant properties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pymatgen.core import Structure


@dataclass(frozen=True)
class CrystalGraphs:
    """A batch-ready set of crystal graphs with optional targets.

    Attributes:
        z: atomic numbers of all atoms, concatenated (n_atoms_total,).
        atom_offsets: structure k owns atoms atom_offsets[k]:atom_offsets[k+1] (n + 1,).
        edges: receiver and sender, indices local to their structure (2, n_edges_total).
        edge_offsets: structure k owns edges edge_offsets[k]:edge_offsets[k+1] (n + 1,).
        vectors: edge vectors receiver -> sender image (n_edges_total, 3) Angstrom.
        y: targets (n, n_targets), NaN where unknown.
    """

    z: npt.NDArray[np.int64]
    atom_offsets: npt.NDArray[np.int64]
    edges: npt.NDArray[np.int64]
    edge_offsets: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    y: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.atom_offsets) - 1

    def subset(self, index: Sequence[int] | npt.NDArray[np.int64]) -> CrystalGraphs:
        """The structures at ``index``, in that order."""
        index = np.asarray(index, dtype=np.int64)
        atoms = [np.arange(self.atom_offsets[i], self.atom_offsets[i + 1]) for i in index]
        edges = [np.arange(self.edge_offsets[i], self.edge_offsets[i + 1]) for i in index]
        atom_index = np.concatenate([np.zeros(0, np.int64), *atoms])
        edge_index = np.concatenate([np.zeros(0, np.int64), *edges])
        return CrystalGraphs(
            z=self.z[atom_index],
            atom_offsets=np.concatenate([[0], np.cumsum([len(a) for a in atoms])]).astype(np.int64),
            edges=self.edges[:, edge_index],
            edge_offsets=np.concatenate([[0], np.cumsum([len(e) for e in edges])]).astype(np.int64),
            vectors=self.vectors[edge_index],
            y=self.y[index])

    @classmethod
    def concat(cls, parts: Sequence[CrystalGraphs]) -> CrystalGraphs:
        """The structures of ``parts``, in order, as one set."""
        return cls(
            z=np.concatenate([p.z for p in parts]),
            atom_offsets=np.concatenate(
                [[0], np.cumsum([len(p.z) for p in parts])]).astype(np.int64),
            edges=np.concatenate([p.edges for p in parts], axis=1),
            edge_offsets=np.concatenate(
                [[0], np.cumsum([p.edges.shape[1] for p in parts])]).astype(np.int64),
            vectors=np.concatenate([p.vectors for p in parts]),
            y=np.concatenate([p.y for p in parts]))

    def save(self, path: str) -> None:
        """Writes the graphs to a compressed ``.npz`` file."""
        np.savez_compressed(path, z=self.z, atom_offsets=self.atom_offsets, edges=self.edges,
                            edge_offsets=self.edge_offsets, vectors=self.vectors, y=self.y)

    @classmethod
    def load(cls, path: str) -> CrystalGraphs:
        """Reads graphs written by :meth:`save`."""
        with np.load(path) as data:
            return cls(**{k: data[k] for k in ("z", "atom_offsets", "edges", "edge_offsets",
                                                "vectors", "y")})


def structure_edges(structure: Structure, cutoff: float
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Directed edges of a structure to every periodic image closer than ``cutoff``.

    Args:
        structure: the crystal.
        cutoff: Angstrom.

    Returns:
        Edges (2, n_edges) as (receiver, sender) and their vectors (n_edges, 3) Angstrom.

    Raises:
        ValueError: an atom with no neighbour inside the cutoff (an isolated atom says the
            cell is not a solid at this cutoff).
    """
    centers, neighbors, images, distances = structure.get_neighbor_list(cutoff)
    keep = distances > 1e-8
    centers, neighbors, images = centers[keep], neighbors[keep], images[keep]
    cart = structure.cart_coords
    vectors = cart[neighbors] + images @ structure.lattice.matrix - cart[centers]
    lonely = sorted(set(range(len(structure))) - set(centers.tolist()))
    if lonely:
        raise ValueError(f"site(s) {lonely} ({structure.composition.reduced_formula}) have no "
                         f"neighbour within {cutoff} Angstrom")
    return (np.stack([centers, neighbors]).astype(np.int64), vectors.astype(np.float32))


def build_graphs(structures: Sequence[Structure], cutoff: float,
                 targets: npt.NDArray[np.float64] | None = None, n_targets: int = 0
                 ) -> CrystalGraphs:
    """Crystal graphs of structures (see :func:`structure_edges`).

    Args:
        structures: the crystals.
        cutoff: Angstrom.
        targets: (n, n_targets) values, NaN where unknown; None for none.
        n_targets: the number of target columns when ``targets`` is None.
    """
    z, edges, vectors, n_atoms, n_edges = [], [], [], [], []
    for structure in structures:
        e, v = structure_edges(structure, cutoff)
        z.append(np.asarray(structure.atomic_numbers, dtype=np.int64))
        edges.append(e)
        vectors.append(v)
        n_atoms.append(len(structure))
        n_edges.append(e.shape[1])
    y = (np.asarray(targets, dtype=np.float32) if targets is not None
         else np.full((len(structures), n_targets), np.nan, dtype=np.float32))
    return CrystalGraphs(
        z=np.concatenate([np.zeros(0, np.int64), *z]),
        atom_offsets=np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64),
        edges=np.concatenate([np.zeros((2, 0), np.int64), *edges], axis=1),
        edge_offsets=np.concatenate([[0], np.cumsum(n_edges)]).astype(np.int64),
        vectors=np.concatenate([np.zeros((0, 3), np.float32), *vectors]),
        y=y)
