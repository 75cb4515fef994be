"""Periodic PySCF oracle: band gap and band-edge site shares of a tiny cell, and their
invariance under rotation, translation and site order."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from pymatgen.core import Lattice, Structure
from pymatgen.core.operations import SymmOp

from materials.domain import structure_candidate
from oracles.pyscf_pbc_oracle import PySCFPBCOracle
from pipeline.types import Candidate, Geometry

A = 5.64  # rock-salt NaCl, Angstrom


def _nacl() -> Structure:
    return Structure(Lattice([[0, A / 2, A / 2], [A / 2, 0, A / 2], [A / 2, A / 2, 0]]),
                     ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _shares(result: object, edge: str) -> dict[str, float]:
    details = result.details  # type: ignore[attr-defined]
    return dict(zip(details["sites"], details[f"{edge}_site_shares"], strict=True))


def test_band_edges_sit_where_chemistry_puts_them_whatever_the_cell_orientation() -> None:
    oracle = PySCFPBCOracle(PySCFPBCOracle.Params(level="pbe-szv-gamma", threads=2))
    first = oracle.run(structure_candidate(_nacl(), "a"))
    assert first.ok, first.reason
    # the valence band top is Cl 3p, the conduction band bottom mostly Na 3s
    assert _shares(first, "vbm")["Cl"] > 0.95
    assert _shares(first, "cbm")["Na"] > 0.5
    assert sum(first.details["vbm_site_shares"]) == pytest.approx(1.0)
    assert first.values["band_gap_ev"] == pytest.approx(
        first.values["cbm_ev"] - first.values["vbm_ev"])
    assert 2.0 < first.values["band_gap_ev"] < 8.0
    moved = _nacl()
    moved.apply_operation(SymmOp.from_axis_angle_and_translation([1, 2, 2], 47.0))
    moved.translate_sites([0, 1], [0.3, -0.2, 0.45], to_unit_cell=True)
    reordered = Structure.from_sites([moved[1], moved[0]])
    second = oracle.run(structure_candidate(reordered, "b"))
    assert second.ok, second.reason
    assert second.details["sites"] == ["Cl", "Na"]
    for edge in ("vbm", "cbm"):
        for site, share in _shares(first, edge).items():
            assert _shares(second, edge)[site] == pytest.approx(share, abs=1e-5)
    # moving the atoms against PySCF's uniform real-space grid changes the total energy and the
    # orbital energies a little (the egg-box effect: 5e-5 eV here); the shares move less
    assert second.values["band_gap_ev"] == pytest.approx(first.values["band_gap_ev"], abs=1e-3)


def test_request_key_ignores_the_origin_but_not_the_level() -> None:
    oracle = PySCFPBCOracle(PySCFPBCOracle.Params(level="pbe-szv-gamma"))
    shifted = _nacl()
    shifted.translate_sites([0, 1], [1.0, 0.0, 0.0], frac_coords=True, to_unit_cell=False)
    one, two = (structure_candidate(s, "x") for s in (_nacl(), shifted))
    assert oracle.request_key(one) == oracle.request_key(two)
    denser = PySCFPBCOracle(PySCFPBCOracle.Params(level="pbe-szv-gamma", kmesh=(2, 2, 2)))
    assert denser.request_key(one) != oracle.request_key(one)
    assert denser.fidelity == "pbc-pbe-szv-gamma" and denser.level.kmesh == (2, 2, 2)


def test_bad_settings_and_molecules_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown level 'pbe-huge'"):
        PySCFPBCOracle.Params(level="pbe-huge")
    molecule = Candidate("m", "O", "O", 0, "file", geometry=Geometry(("O",), ((0.0, 0.0, 0.0),)))
    result = PySCFPBCOracle().run(molecule)
    assert not result.ok and "no periodic geometry" in result.reason
    timed = PySCFPBCOracle(PySCFPBCOracle.Params(level="pbe-szv-gamma", timeout_s=0.5))
    late = timed.run(structure_candidate(_nacl(), "t"))
    assert not late.ok and late.reason == "timeout: no result within 0.5 s"
    assert np.isnan(late.evaluations("t")[0].value)
