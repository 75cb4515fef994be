"""Periodic cells as the crystal generator sees them: one canonical setting per crystal
(:func:`canonical_cell`), the lattice as a vector of log lengths and angles, and the encoded
training cells (:class:`CellSet`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pymatgen.core import Lattice, Structure
from rich.progress import Progress


def canonical_cell(structure: Structure, symprec: float = 0.01) -> Structure:
    """The cell the generator encodes, the same whatever cell, rotation, origin or site order
    came in.

    spglib's standard primitive cell fixes the lattice's setting and orientation (the Niggli
    reduced cell where spglib gives up); what is left free is a symmetry operation of the
    lattice (a cubic lattice's 48) and the origin. Of those, the one whose sorted list of
    (element, fractional coordinates rounded to 1e-3) is smallest is taken, with an atom of the
    alphabetically first element at the origin, and the sites in that sorted order: a cell of a
    polar crystal and its image under a lattice symmetry (polar axis up or down) give one
    encoding.

    Args:
        structure: any cell of the crystal.
        symprec: symmetry tolerance, Angstrom (small: the positions are not idealised beyond it).
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cell = SpacegroupAnalyzer(structure, symprec=symprec).get_primitive_standard_structure()
    except Exception:  # spglib gives up on some distorted cells
        cell = structure.get_reduced_structure()
    if len(cell) != len(structure.get_primitive_structure(tolerance=symprec)):
        cell = structure.get_reduced_structure()
    symbols = [site.specie.symbol for site in cell]
    frac = np.mod(cell.frac_coords, 1.0)
    first = min(symbols)
    origins = [i for i, el in enumerate(symbols) if el == first]
    best: tuple[Any, ...] | None = None
    for rotation in _lattice_rotations(cell.lattice, symprec):
        turned = frac @ rotation.T
        for o in origins:
            moved = np.round(np.mod(turned - turned[o], 1.0), 3) % 1.0
            signature = tuple(sorted(zip(symbols, map(tuple, moved.tolist()), strict=True)))
            if best is None or signature < best:
                best = signature
    assert best is not None
    return Structure(cell.lattice, [el for el, _ in best], np.array([xyz for _, xyz in best]))


def _lattice_rotations(lattice: Lattice, symprec: float) -> list[npt.NDArray[np.float64]]:
    """The point-group operations of a lattice as integer matrices on fractional coordinates
    (those of a one-atom crystal on it) that keep its metric to 1e-4."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ops = SpacegroupAnalyzer(Structure(lattice, ["H"], [[0, 0, 0]]), symprec=symprec
                                 ).get_symmetry_operations(cartesian=False)
    metric = lattice.metric_tensor
    out = []
    for op in ops:
        r = np.round(op.rotation_matrix)
        inv = np.linalg.inv(r)
        if np.allclose(inv.T @ metric @ inv, metric, atol=1e-4 * float(np.abs(metric).max())):
            out.append(r)
    return out or [np.eye(3)]


def rock_salt_supercell(structure: Structure) -> Structure:
    """The 10-atom cell of a 5-atom perovskite cell whose two B sites are rock-salt ordered
    (lattice vectors b + c, a + c, a + b), the cell of a double perovskite A2BB'X6."""
    return structure * [[0, 1, 1], [1, 0, 1], [1, 1, 0]]


def lattice_vector(lattice: Lattice, n_atoms: int) -> npt.NDArray[np.float64]:
    """(6,) ln(lengths / Angstrom) - ln(n_atoms) / 3 and angles in radians."""
    return np.array([*(math.log(x) - math.log(n_atoms) / 3 for x in lattice.abc),
                     *(math.radians(x) for x in lattice.angles)])


def lattice_from_vector(vector: npt.ArrayLike, n_atoms: int) -> Lattice:
    """Inverse of :func:`lattice_vector` (angles clipped to 30-150 degrees)."""
    v = np.asarray(vector, dtype=np.float64)
    lengths = np.exp(v[:3] + math.log(n_atoms) / 3)
    angles = np.clip(np.degrees(v[3:]), 30.0, 150.0)
    return Lattice.from_parameters(*lengths, *angles)


@dataclass(frozen=True)
class CellSet:
    """Encoded training cells.

    Attributes:
        species: per cell, (n,) element indices into the vocabulary.
        frac: per cell, (n, 3) fractional coordinates.
        lattice: (n_cells, 6) :func:`lattice_vector` of each cell.
        y: (n_cells, n_properties) labels, NaN where unknown.
    """

    species: list[npt.NDArray[np.int64]]
    frac: list[npt.NDArray[np.float64]]
    lattice: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.species)


def encode_cells(structures: Sequence[Structure], y: npt.ArrayLike, vocabulary: Sequence[str],
                 double_share: float = 0.0, symprec: float | None = 0.01,
                 progress: Progress | None = None) -> CellSet:
    """Canonical cells of ``structures`` as arrays (and their rock-salt supercells).

    With ``symprec`` None, the structures are taken as canonical cells already.

    Raises:
        ValueError: an element outside ``vocabulary`` (the structure's index is named).
    """
    labels = np.asarray(y, dtype=np.float64)
    index = {el: k for k, el in enumerate(vocabulary)}
    species, frac, lattice, ys = [], [], [], []
    task = progress.add_task("encoding cells", total=len(structures)) if progress else None
    for i, s in enumerate(structures):
        cells = [canonical_cell(s, symprec) if symprec is not None else s]
        if len(cells[0]) == 5 and (i * 0.6180339887) % 1.0 < double_share:
            cells.append(rock_salt_supercell(cells[0]))
        for cell in cells:
            try:
                species.append(np.array([index[site.specie.symbol] for site in cell]))
            except KeyError as exc:
                raise ValueError(f"structure {i} ({s.composition.reduced_formula}): element "
                                 f"{exc.args[0]} is not in the vocabulary") from None
            frac.append(np.mod(cell.frac_coords, 1.0))
            lattice.append(lattice_vector(cell.lattice, len(cell)))
            ys.append(labels[i])
        if progress is not None and task is not None:
            progress.advance(task)
    return CellSet(species, frac, np.array(lattice).reshape(-1, 6),
                   np.array(ys).reshape(len(species), labels.shape[1]))
