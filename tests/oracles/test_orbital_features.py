"""Orbital-invariant features: rotation, translation, atom order, phase and degeneracy."""

from __future__ import annotations

import numpy as np
import pytest
from pyscf import gto, scf
from scipy.spatial.transform import Rotation

from oracles.orbital_features import (
    ATOM_FEATURES,
    DESCRIPTORS,
    GLOBAL_FEATURES,
    feature_arrays,
    frontier_densities,
    heavy_atom_shares,
    molecule_descriptors,
    orbital_descriptors,
)
from oracles.pyscf_oracle import PySCFOracle
from pipeline.types import Candidate, Geometry

# formamide, no symmetry: every atom differs, Angstrom
FORMAMIDE = Geometry(
    symbols=("C", "O", "N", "H", "H", "H"),
    positions_angstrom=(
        (0.000, 0.419, 0.000), (1.207, 0.592, 0.003), (-0.609, -0.818, -0.021),
        (-0.690, 1.276, 0.013), (-1.617, -0.883, 0.012), (-0.049, -1.653, 0.054),
    ),
)


def _benzene(radius_c: float = 1.3915, radius_h: float = 2.4715) -> Geometry:
    """Exact D6h benzene in the xy plane, Angstrom."""
    angles = np.deg2rad(np.arange(6) * 60.0)
    carbons = [(radius_c * np.cos(a), radius_c * np.sin(a), 0.0) for a in angles]
    hydrogens = [(radius_h * np.cos(a), radius_h * np.sin(a), 0.0) for a in angles]
    return Geometry(("C",) * 6 + ("H",) * 6, tuple(carbons + hydrogens))


def _features(geometry: Geometry, fukui: str = "frontier") -> tuple[np.ndarray, np.ndarray]:
    """Global feature vector (6,) and per-atom feature matrix (n_atoms, 6)."""
    oracle = PySCFOracle(PySCFOracle.Params(level="fast", conv_tol=1e-11, fukui=fukui))  # type: ignore[arg-type]
    result = oracle.run(Candidate("m", "x", "x", 0, "test", geometry=geometry))
    assert result.ok, result.reason
    glob, atoms = feature_arrays(dict(result.values), dict(result.details))
    assert glob.shape == (len(GLOBAL_FEATURES),)
    assert atoms.shape == (len(geometry.symbols), len(ATOM_FEATURES))
    return glob, atoms


def _moved(geometry: Geometry, seed: int) -> Geometry:
    rng = np.random.default_rng(seed)
    rotation = Rotation.random(random_state=seed).as_matrix()
    pos = np.array(geometry.positions_angstrom) @ rotation.T + rng.uniform(-5, 5, size=3)
    return Geometry(geometry.symbols, tuple(map(tuple, pos)))


@pytest.mark.parametrize("fukui", ["frontier", "finite_difference"])
def test_features_are_invariant_to_rotation_and_translation(fukui: str) -> None:
    ref_global, ref_atoms = _features(FORMAMIDE, fukui)
    for seed in (1, 2):
        glob, atoms = _features(_moved(FORMAMIDE, seed), fukui)
        np.testing.assert_allclose(glob, ref_global, atol=1e-5)
        np.testing.assert_allclose(atoms, ref_atoms, atol=1e-5)


def test_features_follow_the_atoms_when_they_are_reordered() -> None:
    _, ref_atoms = _features(FORMAMIDE)
    order = [4, 2, 0, 5, 1, 3]
    shuffled = Geometry(tuple(FORMAMIDE.symbols[i] for i in order),
                        tuple(FORMAMIDE.positions_angstrom[i] for i in order))
    _, atoms = _features(shuffled)
    np.testing.assert_allclose(atoms, ref_atoms[order], atol=1e-5)


def test_sum_rules() -> None:
    _, atoms = _features(FORMAMIDE, "finite_difference")
    assert ATOM_FEATURES == ("homo_density", "lumo_density", "fukui_plus", "fukui_minus",
                             "dual_descriptor", "charge")
    homo, lumo, f_plus, f_minus, dual, charge = atoms.T
    for shares in (homo, lumo, f_plus, f_minus):
        assert shares.sum() == pytest.approx(1.0, abs=1e-8)
    assert dual.sum() == pytest.approx(0.0, abs=1e-8)
    assert charge.sum() == pytest.approx(0.0, abs=1e-8)  # neutral molecule
    # the carbonyl carbon carries more of the LUMO than any hydrogen
    assert lumo[0] > lumo[3:].max()


def test_benzene_degenerate_homo_is_shared_equally_by_the_six_carbons() -> None:
    benzene = _benzene()
    runs = [_features(benzene)[1], _features(benzene)[1], _features(_moved(benzene, 7))[1]]
    for atoms in runs:
        homo_c = atoms[:6, 0]
        np.testing.assert_allclose(homo_c, homo_c.mean(), atol=1e-6)
        np.testing.assert_allclose(atoms, runs[0], atol=1e-5)
    assert runs[0][:6, 0].sum() == pytest.approx(1.0, abs=1e-3)  # pi HOMO: carbons only


def test_averaged_density_ignores_mixing_and_phase_inside_a_degenerate_set() -> None:
    g = _benzene()
    mol = gto.M(atom=list(zip(g.symbols, g.positions_angstrom, strict=True)), basis="sto-3g",
                verbose=0)
    mf = scf.RHF(mol).run()
    overlap = mol.intor_symmetric("int1e_ovlp")
    slices = np.asarray(mol.aoslice_by_atom())[:, 2:4]
    coeff = np.array(mf.mo_coeff)
    homo, _, g_homo, g_lumo = frontier_densities(overlap, coeff, mf.mo_energy, mf.mo_occ, slices)
    assert (g_homo, g_lumo) == (2, 2)
    # rotate the two HOMOs into each other and flip a sign: same densities
    nocc = int(mol.nelectron // 2)
    theta = 0.7
    mixed = coeff.copy()
    a, b = coeff[:, nocc - 2].copy(), coeff[:, nocc - 1].copy()
    mixed[:, nocc - 2] = np.cos(theta) * a + np.sin(theta) * b
    mixed[:, nocc - 1] = -(-np.sin(theta) * a + np.cos(theta) * b)
    homo_mixed, *_ = frontier_densities(overlap, mixed, mf.mo_energy, mf.mo_occ, slices)
    np.testing.assert_allclose(homo_mixed, homo, atol=1e-10)
    # while a single member of the set alone is not symmetric
    single, *_ = frontier_densities(overlap, mixed, mf.mo_energy, mf.mo_occ, slices,
                                    degeneracy_tol_hartree=0.0)
    assert np.ptp(single[:6]) > 1e-3


def test_lowdin_square_root_of_a_complex_overlap() -> None:
    """At a k-point other than Gamma the Bloch overlap matrix is complex Hermitian."""
    import numpy as np

    from oracles.orbital_features import lowdin_transform

    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5)) + 1j * rng.normal(size=(5, 5))
    overlap = a @ a.conj().T + 5 * np.eye(5)
    root = lowdin_transform(overlap)
    assert np.allclose(root @ root, overlap)
    assert np.allclose(root, root.conj().T)


# --- orbital-location descriptors -------------------------------------------------------------

FORMALDEHYDE = Geometry(
    symbols=("C", "O", "H", "H"),
    positions_angstrom=((0.0, 0.0, 0.0), (0.0, 0.0, 1.205), (0.0, 0.943, -0.587),
                        (0.0, -0.943, -0.587)),
)


def _descriptors(geometry: Geometry) -> tuple[dict[str, float], dict[str, object]]:
    oracle = PySCFOracle(PySCFOracle.Params(level="fast", conv_tol=1e-11))
    result = oracle.run(Candidate("m", "x", "x", 0, "test", geometry=geometry))
    assert result.ok, result.reason
    return {k: result.values[k] for k in DESCRIPTORS}, dict(result.details)


def test_descriptors_are_oracle_properties_with_units() -> None:
    oracle = PySCFOracle(PySCFOracle.Params(level="fast"))
    props = oracle.properties()
    assert props["frontier_overlap"] == "fraction"
    assert props["homo_pr"] == "atoms"
    assert {f"lumo_share_{e}" for e in "CNOF"} <= set(props)


def test_formaldehyde_lumo_sits_on_the_carbonyl_pair_with_more_on_carbon() -> None:
    values, details = _descriptors(FORMALDEHYDE)
    atoms = details["atoms"]
    assert isinstance(atoms, list)
    lumo = np.array([a["lumo_density"] for a in atoms])
    # the pi* orbital: the hydrogens have almost none of it, carbon more than oxygen
    assert lumo[:2].sum() > 0.95
    assert lumo[0] > lumo[1]
    assert values["lumo_share_C"] == pytest.approx(lumo[0] + lumo[2] + lumo[3], abs=1e-9)
    assert values["lumo_share_C"] + values["lumo_share_O"] == pytest.approx(1.0, abs=1e-9)
    # the HOMO is oxygen's lone pair
    assert values["homo_share_O"] > 0.5
    assert 1.0 < values["lumo_pr"] < 2.0
    assert values["lumo_share_N"] == values["lumo_share_F"] == 0.0


def test_benzene_carbons_share_homo_and_lumo_equally() -> None:
    values, details = _descriptors(_benzene())
    atoms = details["atoms"]
    assert isinstance(atoms, list)
    _, p_h, p_l, _ = molecule_descriptors(
        [a["symbol"] for a in atoms], np.array(details["positions_angstrom"]),
        np.array([a["homo_density"] for a in atoms]), np.array([a["lumo_density"] for a in atoms]))
    np.testing.assert_allclose(p_h, 1 / 6, atol=1e-6)
    np.testing.assert_allclose(p_l, 1 / 6, atol=1e-6)
    assert values["homo_pr"] == pytest.approx(6.0, abs=1e-4)
    assert values["lumo_pr"] == pytest.approx(6.0, abs=1e-4)
    assert values["frontier_overlap"] == pytest.approx(1.0, abs=1e-6)
    assert values["homo_share_C"] == pytest.approx(1.0, abs=1e-9)


def test_descriptors_are_invariant_to_rotation_translation_and_atom_order() -> None:
    reference, _ = _descriptors(FORMAMIDE)
    order = [4, 2, 0, 5, 1, 3]
    moved = _moved(FORMAMIDE, 3)
    shuffled = Geometry(tuple(moved.symbols[i] for i in order),
                        tuple(moved.positions_angstrom[i] for i in order))
    values, _ = _descriptors(shuffled)
    for key, value in reference.items():
        assert values[key] == pytest.approx(value, abs=1e-5), key


def test_heavy_atom_shares_fold_each_hydrogen_into_its_nearest_heavy_atom() -> None:
    symbols = ["H", "C", "O", "H"]
    positions = np.array([[-1.1, 0, 0], [0, 0, 0], [1.2, 0, 0], [2.1, 0, 0]])
    heavy, folded = heavy_atom_shares(symbols, positions, np.array([0.1, 0.3, 0.4, 0.2]))
    assert heavy.tolist() == [1, 2]
    np.testing.assert_allclose(folded, [0.4, 0.6])
    with pytest.raises(ValueError, match="no heavy atom"):
        heavy_atom_shares(["H", "H"], positions[:2], np.array([0.5, 0.5]))


def test_descriptor_arithmetic_on_literal_shares() -> None:
    d = orbital_descriptors(["C", "N", "O"], np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.5, 0.5]))
    assert d["frontier_overlap"] == 0.0  # no atom in common
    assert d["homo_pr"] == 1.0 and d["lumo_pr"] == 2.0
    assert d["lumo_share_N"] == d["lumo_share_O"] == 0.5
    same = orbital_descriptors(["C", "C"], np.array([0.25, 0.75]), np.array([0.25, 0.75]))
    assert same["frontier_overlap"] == pytest.approx(1.0)
