"""Labelled perovskite tables (the perov-5 format) and splits that keep compositions together.

The perov-5 data (Castelli et al., Energy Environ. Sci. 5, 9034, 2012, as distributed with
CDVAE) is a CSV with one 5-atom cubic cell a row: ``cif``, ``heat_all`` (heat of formation of
the cell, eV), ``ind_gap`` (GLLB-SC fundamental gap, eV). The model's targets are per atom:
``formation_energy_ev_per_atom = heat_all / atoms in the cell``.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from pymatgen.core import Structure

REQUIRED = ("cif", "heat_all", "ind_gap")


@dataclass(frozen=True)
class PerovskiteTable:
    """Structures with their targets.

    Attributes:
        structures: the cells.
        targets: (n, 2) formation energy (eV/atom) and band gap (eV).
        reduced_formulas: reduced formula of each structure (the split's groups).
        ids: the table's ``material_id`` (or row number) of each structure.
    """

    structures: list[Structure]
    targets: npt.NDArray[np.float64]
    reduced_formulas: list[str]
    ids: list[str]


def read_perovskite_table(path: str | Path, limit: int | None = None) -> PerovskiteTable:
    """Reads a perov-5 style CSV (plain or gzip).

    Args:
        path: the file.
        limit: read only the first ``limit`` rows.

    Raises:
        ValueError: a missing column, or a row whose CIF does not parse or whose values are
            not numbers (the file, row and column are named; nothing is returned).
    """
    frame = pd.read_csv(path, nrows=limit)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a perovskite table needs "
                         f"{list(REQUIRED)}")
    structures, targets, formulas, ids = [], [], [], []
    for row, record in enumerate(frame.itertuples(index=False), start=2):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = Structure.from_str(str(record.cif), fmt="cif")
        except Exception as exc:
            raise ValueError(f"{path}, row {row}, column cif: not a readable CIF ({exc})") from exc
        values = []
        for column in ("heat_all", "ind_gap"):
            value = getattr(record, column)
            try:
                values.append(float(value))
            except (TypeError, ValueError):
                raise ValueError(f"{path}, row {row}, column {column}: {value!r} is not a "
                                 "number") from None
        structures.append(structure)
        targets.append([values[0] / len(structure), values[1]])
        formulas.append(structure.composition.reduced_formula)
        ids.append(str(getattr(record, "material_id", row - 2)))
    return PerovskiteTable(structures, np.asarray(targets, dtype=np.float64).reshape(-1, 2),
                           formulas, ids)


def composition_split(reduced_formulas: Sequence[str], test_percent: int = 15,
                      validation_percent: int = 10, salt: str = "invdes-perov5"
                      ) -> npt.NDArray[np.str_]:
    """Assigns each structure to ``train``, ``validation`` or ``test`` by a hash of its reduced
    formula, so that polymorphs of one composition land on one side and the assignment does not
    depend on the order or the size of the table.

    Returns:
        One label per structure.
    """
    labels = []
    for formula in reduced_formulas:
        bucket = int(hashlib.sha256(f"{salt}:{formula}".encode()).hexdigest()[:8], 16) % 100
        labels.append("test" if bucket < test_percent
                      else "validation" if bucket < test_percent + validation_percent
                      else "train")
    return np.asarray(labels)


def read_stability_labels(path: str | Path, ids: Sequence[str]) -> npt.NDArray[np.float64]:
    """CHGNet decomposition energies (eV/atom) of ``ids`` from a labels file
    (:mod:`oracles.chgnet_labels` columns); NaN where an id has none or its labelling failed.

    Raises:
        ValueError: the file lacks the columns, or a value is not a number (row named).
    """
    frame = pd.read_csv(path, dtype={"material_id": str})
    needed = ("material_id", "decomposition_energy_ev_per_atom")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    values: dict[str, float] = {}
    for row, (mid, value) in enumerate(zip(frame["material_id"], frame[needed[1]],
                                           strict=True), start=2):
        try:
            values[str(mid)] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: row {row}, column {needed[1]}: {value!r} is not a "
                             "number") from None
    return np.array([values.get(str(i), np.nan) for i in ids], dtype=np.float64)
