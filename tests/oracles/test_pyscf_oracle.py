from __future__ import annotations

import math

import numpy as np
import pytest

from oracles.orbital_features import DESCRIPTORS
from oracles.pyscf_oracle import PySCFOracle
from pipeline.types import Candidate, EvaluationStatus, Geometry

# water at a fixed geometry, Angstrom
WATER = Geometry(
    symbols=("O", "H", "H"),
    positions_angstrom=((0.0, 0.0, 0.1173), (0.0, 0.7572, -0.4692), (0.0, -0.7572, -0.4692)),
)


def _water(cid: str = "w") -> Candidate:
    return Candidate(cid, "O", "O", 0, "test", geometry=WATER)


def _hf(**changes: object) -> PySCFOracle:
    return PySCFOracle(PySCFOracle.Params(level="fast", **changes))  # type: ignore[arg-type]


def test_water_hf_sto3g_matches_reference_values() -> None:
    results = {e.property: e for e in _hf()([_water()])}
    assert set(results) == {"energy_hartree", "homo_ev", "lumo_ev", "gap_ev", "dipole_debye",
                            *DESCRIPTORS}
    assert all(e.ok and e.fidelity == "dft-fast" for e in results.values())
    # RHF/STO-3G water near its equilibrium geometry: E = -74.963 Hartree, HOMO about -10.6 eV
    assert results["energy_hartree"].value == pytest.approx(-74.963, abs=2e-3)
    assert results["homo_ev"].value == pytest.approx(-10.6, abs=0.3)
    assert results["gap_ev"].value == pytest.approx(
        results["lumo_ev"].value - results["homo_ev"].value, abs=1e-9)
    assert results["dipole_debye"].value == pytest.approx(1.7, abs=0.1)
    assert results["gap_ev"].unit == "eV" and results["energy_hartree"].unit == "Hartree"
    provenance = results["gap_ev"].provenance
    assert provenance["method"] == "hf" and provenance["basis"] == "sto-3g"
    assert provenance["pyscf_version"] and provenance["wall_s"] > 0


def test_non_converging_scf_is_a_failed_result_with_its_reason() -> None:
    results = _hf(max_scf_cycles=1, escalate=False)([_water()])
    assert all(e.status is EvaluationStatus.FAILED and math.isnan(e.value) for e in results)
    assert "SCF did not converge after 1 cycles" in results[0].reason


def test_timeout_is_a_failed_result_and_the_worker_is_killed() -> None:
    results = _hf(timeout_s=0.05)([_water()])
    assert results[0].status is EvaluationStatus.FAILED
    assert results[0].reason == "timeout: no result within 0.05 s"


def test_missing_geometry_is_a_failed_result() -> None:
    results = _hf()([Candidate("x", "O", "O", 0, "test")])
    assert results[0].status is EvaluationStatus.FAILED
    assert "has no 3D geometry" in results[0].reason


def test_request_key_depends_on_content_and_level_only() -> None:
    a, b = _water("a"), _water("b")
    assert _hf().request_key(a) == _hf().request_key(b)
    nudged = Geometry(WATER.symbols, ((0.0, 0.0, 0.1173 + 0.001), *WATER.positions_angstrom[1:]))
    moved = Candidate("c", "O", "O", 0, "test", geometry=nudged)
    assert _hf().request_key(moved) != _hf().request_key(a)
    other_basis = PySCFOracle(PySCFOracle.Params(level="fast", basis="6-31g"))
    assert other_basis.request_key(a) != _hf().request_key(a)
    assert other_basis.fidelity == "dft-hf/6-31g"
    assert _hf(timeout_s=5).request_key(a) == _hf().request_key(a)  # limits are not content


def test_memory_limit_is_a_failed_result_naming_the_limit() -> None:
    big = PySCFOracle(PySCFOracle.Params(level="fast", basis="def2-tzvp", max_memory_mb=100,
                                         memory_limit_mb=1100))
    geometry = Geometry(("C",) * 6 + ("H",) * 6, tuple(
        (1.39 * np.cos(a), 1.39 * np.sin(a), 0.0) for a in np.arange(6) * np.pi / 3
    ) + tuple((2.47 * np.cos(a), 2.47 * np.sin(a), 0.0) for a in np.arange(6) * np.pi / 3))
    result = big.run(Candidate("b", "c1ccccc1", "c1ccccc1", 0, "test", geometry=geometry))
    assert not result.ok
    assert result.reason.startswith("out of memory: the limit of 1100 MB was reached")
    with pytest.raises(ValueError, match="memory_limit_mb=1500 leaves no room"):
        PySCFOracle.Params(level="fast", memory_limit_mb=1500)


def test_levels_resolve_and_unknown_levels_list_the_known_ones() -> None:
    standard = PySCFOracle(PySCFOracle.Params(level="standard"))
    assert (standard.level.method, standard.level.basis) == ("b3lyp", "def2-svp")
    assert standard.level.density_fitting and standard.fidelity == "dft-standard"
    qm9 = PySCFOracle(PySCFOracle.Params(level="qm9")).level
    assert (qm9.basis, qm9.density_fitting, qm9.cartesian) == ("6-31g(2df,p)", True, False)
    with pytest.raises(ValueError, match="unknown level 'best'; known: fast, cheap-dft"):
        PySCFOracle.Params(level="best")
    with pytest.raises(ValueError, match="give a 'level' or both 'method' and 'basis'"):
        PySCFOracle.Params(method="b3lyp")


def test_geometry_optimisation_relaxes_a_stretched_molecule() -> None:
    stretched = Geometry(("O", "H", "H"),
                         ((0.0, 0.0, 0.0), (0.0, 0.95, 0.75), (0.0, -0.95, 0.75)))
    oracle = PySCFOracle(PySCFOracle.Params(level="fast", optimize_geometry=True))
    result = oracle.run(Candidate("s", "O", "O", 0, "test", geometry=stretched))
    assert result.ok, result.reason
    pos = np.array(result.details["positions_angstrom"])
    oh = np.linalg.norm(pos[1] - pos[0])
    assert oh == pytest.approx(0.989, abs=0.01)  # RHF/STO-3G O-H bond length, Angstrom
    assert "geometric" in result.details["versions"]
    assert oracle.request_key(Candidate("s", "O", "O", 0, "t", geometry=stretched)) != _hf(
    ).request_key(Candidate("s", "O", "O", 0, "t", geometry=stretched))
    # optimise at HF/STO-3G, then compute at B3LYP/STO-3G on the relaxed geometry
    two_level = PySCFOracle(PySCFOracle.Params(level="cheap-dft", optimize_geometry=True,
                                               optimize_level="fast"))
    relaxed = two_level.run(Candidate("s", "O", "O", 0, "test", geometry=stretched))
    assert relaxed.ok, relaxed.reason
    np.testing.assert_allclose(relaxed.details["positions_angstrom"], pos, atol=1e-3)
    assert relaxed.provenance["method"] == "b3lyp"


def test_escalation_rescues_an_scf_that_runs_out_of_cycles() -> None:
    geometry = Geometry(("C", "O"), ((0.0, 0.0, 0.0), (0.0, 0.0, 1.13)))
    cand = Candidate("co", "[C-]#[O+]", "[C-]#[O+]", 0, "test", geometry=geometry)
    plain = _hf(max_scf_cycles=3, escalate=False).run(cand)
    assert not plain.ok and "did not converge after 3 cycles" in plain.reason
    rescued = _hf(max_scf_cycles=3).run(cand)
    assert rescued.ok, rescued.reason
    assert rescued.provenance["remedy"] in ("damping+level_shift", "newton")
    reference = _hf().run(cand)
    assert rescued.values["gap_ev"] == pytest.approx(reference.values["gap_ev"], abs=1e-4)
