"""CHGNet oracle: relaxation of a distorted cell, the hull of its competing phases, the cache."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Structure

from materials.domain import structure_candidate
from materials.structures import cubic_perovskite
from oracles.chgnet_oracle import CHGNetOracle
from oracles.competing_phases import competing_phases
from pipeline.store import Store
from pipeline.types import Candidate, Geometry


def test_phase_set_names_elements_and_binaries() -> None:
    names = [p.name for p in competing_phases(["Cs", "Sn", "Cl"])]
    assert {"Cl2:molecule", "Cs:bcc", "Sn:fcc", "CsCl:rocksalt", "CsCl:CsCl", "SnCl2:CdI2",
            "SnCl2:fluorite"} - set(names) == set()
    assert "SnCl4:molecule" in names  # Sn4+: molecular SnCl4, as in reality
    # every phase starts with its shortest cation-anion distance at the sum of ionic radii
    rocksalt = next(p for p in competing_phases(["Cs", "Cl"]) if p.name == "CsCl:rocksalt")
    distances = rocksalt.structure.distance_matrix
    # (Shannon's median radii over coordinations: Cs+ 1.795, Cl- 1.81 Angstrom)
    assert distances[distances > 0].min() == pytest.approx(1.795 + 1.81, abs=0.01)


def test_relaxes_a_distorted_cell_and_places_it_on_the_hull(tmp_path: object) -> None:
    cell = cubic_perovskite("Cs", "Sn", "Cl", 5.9)
    cell.apply_strain([0.06, -0.04, 0.02])
    candidate = structure_candidate(cell, "c1")
    store = Store(f"sqlite:///{tmp_path}/store.db")
    oracle = CHGNetOracle(CHGNetOracle.Params(max_steps=300, phase_max_steps=200))
    oracle.bind_cache(store)
    result = oracle.run(candidate)
    assert result.ok, result.reason
    relaxed = Structure.from_str(result.details["relaxed_cif"], fmt="cif")
    a, b, c = relaxed.lattice.abc
    # the strain relaxes away: the cell is cubic again within 1 %
    assert max(a, b, c) / min(a, b, c) < 1.01 and result.details["converged"]
    assert 5.4 < np.mean([a, b, c]) < 5.9  # CsSnCl3, experiment 5.56 Angstrom
    values = result.values
    assert values["e_above_hull_ev_per_atom"] == max(0.0, values["decomposition_energy_ev_per_atom"])
    # stable against CsCl + SnCl2 (Bartel et al.'s DFT: 65 meV/atom below them)
    assert -0.2 < values["decomposition_energy_ev_per_atom"] < 0.0
    assert values["formation_energy_ev_per_atom"] < -1.0
    assert not result.details["phases_failed"]
    # the phases are in the store: another oracle on the same store relaxes none again
    again = CHGNetOracle(CHGNetOracle.Params(max_steps=300, phase_max_steps=200))
    again.bind_cache(store)
    calls: list[str] = []
    import oracles.chgnet_oracle as module

    original = module.relax

    def counting(structure, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(structure.composition.reduced_formula)
        return original(structure, **kwargs)

    module.relax = counting
    try:
        second = again.run(candidate)
    finally:
        module.relax = original
    assert calls == ["CsSnCl3"] and second.values == pytest.approx(dict(values), abs=1e-6)


def test_a_molecule_is_refused_with_a_reason() -> None:
    molecule = Candidate("m", "O", "O", 0, "file",
                         geometry=Geometry(("O", "H", "H"), ((0, 0, 0), (0.96, 0, 0), (0, 0.96, 0))))
    result = CHGNetOracle().run(molecule)
    assert not result.ok and "no periodic geometry" in result.reason
