"""Crystal graphs and the periodic PaiNN ensemble: invariance, training, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Structure
from pymatgen.core.operations import SymmOp

from materials.crystal_graph import build_graphs, structure_edges
from materials.crystal_model import (
    CrystalEnsemble,
    CrystalTrainingConfig,
    rattled_vectors,
    roc_auc,
    train_crystal_ensemble,
)
from materials.datasets import composition_split, read_perovskite_table
from materials.prior import predict_structures
from materials.structures import cubic_perovskite, to_cif


def _cells() -> list[Structure]:
    return [cubic_perovskite(a, b, x, lat) for a, b, x, lat in (
        ("Sr", "Ti", "O", 3.9), ("Ba", "Ti", "O", 4.0), ("Ca", "Zr", "O", 4.1),
        ("K", "Nb", "O", 4.0), ("Cs", "Sn", "Br", 5.8), ("K", "Mg", "F", 4.0),
        ("La", "Al", "O", 3.8), ("Sr", "Zr", "O", 4.15))]


@pytest.fixture(scope="module")
def ensemble() -> CrystalEnsemble:
    cells = _cells()
    # formation energy (eV/atom) and band gap (eV): literal numbers for a tiny training run
    y = np.array([[-3.5, 1.8], [-3.3, 1.6], [-3.6, 3.2], [-2.9, 0.0], [-1.2, 0.0],
                  [-3.0, 4.0], [-3.4, 0.0], [-3.6, 2.5]])
    graphs = build_graphs(cells, 5.0, y)
    config = CrystalTrainingConfig(features=16, n_layers=2, n_rbf=8, cutoff=5.0, members=2,
                                   epochs=40, warmup_epochs=5, batch_size=4,
                                   learning_rate=3e-3)
    torch.manual_seed(0)
    return train_crystal_ensemble(graphs.subset(range(6)), graphs.subset([6, 7]), config)


def test_edges_reach_periodic_images() -> None:
    cell = cubic_perovskite("Sr", "Ti", "O", 3.9)
    edges, vectors = structure_edges(cell, 3.0)
    lengths = np.linalg.norm(vectors, axis=1)
    # Ti (site 1) has six O at a/2 = 1.95 Angstrom, two of them in other cells
    ti = edges[0] == 1
    assert np.sum(np.isclose(lengths[ti], 1.95, atol=1e-4)) == 6
    with pytest.raises(ValueError, match=r"no neighbour within 1\.0 Angstrom"):
        structure_edges(cell, 1.0)


def test_predictions_do_not_depend_on_orientation_origin_order_or_cell(ensemble: CrystalEnsemble
                                                                       ) -> None:
    cell = cubic_perovskite("Ba", "Zr", "O", 4.19)
    moved = cell.copy()
    moved.apply_operation(SymmOp.from_axis_angle_and_translation([1, 1, 0], 31.0))
    moved.translate_sites(list(range(5)), [0.21, 0.37, 0.05])
    reordered = Structure.from_sites([moved[i] for i in (4, 2, 0, 3, 1)])
    bigger = cell.copy()
    bigger.make_supercell([1, 2, 1])
    strained = cubic_perovskite("Ba", "Zr", "O", 4.5)
    mean, std, p_gap, reasons = predict_structures(ensemble, [cell, moved, reordered, bigger,
                                                              strained])
    assert reasons == [""] * 5
    for k in (1, 2, 3):
        assert np.allclose(mean[k], mean[0], atol=1e-5) and np.allclose(std[k], std[0], atol=1e-5)
        assert p_gap[k] == pytest.approx(p_gap[0], abs=1e-6)
    assert not np.allclose(mean[4], mean[0], atol=1e-4)  # the geometry does matter


def test_training_fits_and_the_checkpoint_round_trips(ensemble: CrystalEnsemble,
                                                      tmp_path: object) -> None:
    train = _cells()[:6]
    mean, std, p_gap, _ = predict_structures(ensemble, train)
    energy = np.array([-3.5, -3.3, -3.6, -2.9, -1.2, -3.0])
    # 40 epochs on six cells: the formation energies are learnt to well within their spread
    assert np.mean(np.abs(mean[:, 0] - energy)) < 0.5 * np.std(energy)
    assert np.all(std > 0) and np.all((p_gap >= 0) & (p_gap <= 1))
    assert mean[:, 1].min() >= 0.0  # the hurdle gap is never negative
    assert ensemble.metrics["n_train"] == 6 and "mae_band_gap_ev_all_zero" in (
        ensemble.metrics["validation"])
    path = f"{tmp_path}/crystal.pt"
    ensemble.save(path)
    again = CrystalEnsemble.load(path)
    mean2, std2, p2, _ = predict_structures(again, train)
    assert np.allclose(mean, mean2) and np.allclose(std, std2) and np.allclose(p_gap, p2)


def test_unknown_structures_get_reasons_not_numbers(ensemble: CrystalEnsemble) -> None:
    lonely = Structure(cubic_perovskite("Sr", "Ti", "O", 3.9).lattice.matrix * 3,
                       ["Sr", "Ti"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    collapsed = cubic_perovskite("Sr", "Ti", "O", 3.9)
    collapsed.replace(1, "Ti", [0.02, 0.0, 0.01])  # Ti onto Sr: 0.09 Angstrom apart
    mean, _, _, reasons = predict_structures(ensemble, [None, lonely, collapsed])
    assert np.isnan(mean).all()
    assert reasons[0] == "no structure" and "no neighbour within 5.0 Angstrom" in reasons[1]
    assert reasons[2].startswith("not a physical cell: sites 0 (Sr) and 1 (Ti) 0.09 A apart")


def test_roc_auc_counts_ties_half() -> None:
    assert roc_auc(np.array([True, False]), np.array([0.9, 0.1])) == 1.0
    assert roc_auc(np.array([True, False, True, False]), np.array([0.5, 0.5, 0.2, 0.8])) == 0.125
    assert np.isnan(roc_auc(np.array([True, True]), np.array([0.1, 0.2])))


def test_tables_are_read_with_per_atom_targets_and_split_by_composition(tmp_path: object) -> None:
    cells = [cubic_perovskite("Sr", "Ti", "O", 3.9), cubic_perovskite("Ti", "Sr", "O", 3.9),
             cubic_perovskite("Ba", "Ti", "O", 4.0)]
    path = f"{tmp_path}/pool.csv"
    rows = [{"material_id": i, "cif": to_cif(c), "heat_all": h, "ind_gap": g}
            for i, (c, h, g) in enumerate(zip(cells, [-10.0, 2.5, -9.0], [1.8, 0.0, 1.6],
                                              strict=True))]
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)
    table = read_perovskite_table(path)
    assert np.allclose(table.targets, [[-2.0, 1.8], [0.5, 0.0], [-1.8, 1.6]])
    split = composition_split(table.reduced_formulas)
    assert split[0] == split[1]  # polymorphs of SrTiO3 stay together
    assert set(split) <= {"train", "validation", "test"}
    pd.DataFrame([{**rows[0], "heat_all": "abc"}]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row 2, column heat_all: 'abc' is not a number"):
        read_perovskite_table(path)
    pd.DataFrame([{"cif": "x", "heat_all": 1.0}]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ind_gap'\]"):
        read_perovskite_table(path)


def test_member_checkpoints_continue_on_another_device(tmp_path: object) -> None:
    """Member checkpoints name the recipe, not the device: a run started elsewhere (a GPU)
    is taken up where it stopped."""
    from pathlib import Path

    cells = _cells()[:5]
    y = np.array([[-3.5, 1.8], [-3.3, 1.6], [-3.6, 3.2], [-2.9, 0.0], [-1.2, 0.0]])
    graphs = build_graphs(cells, 5.0, y)
    config = CrystalTrainingConfig(features=8, n_layers=1, n_rbf=4, cutoff=5.0, members=1,
                                   epochs=5, warmup_epochs=1, batch_size=2, device="cpu")
    folder = Path(str(tmp_path)) / "members"
    first = train_crystal_ensemble(graphs.subset(range(4)), graphs.subset([4]), config,
                                   checkpoint_dir=folder)
    assert torch.load(folder / "member-0.pt", weights_only=True)["epoch"] == 5
    again = train_crystal_ensemble(graphs.subset(range(4)), graphs.subset([4]),
                                   config.model_copy(update={"device": "auto"}),
                                   checkpoint_dir=folder)
    a, _, _ = first.predict_graphs(graphs)
    b, _, _ = again.predict_graphs(graphs)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="another recipe"):
        train_crystal_ensemble(graphs.subset(range(4)), graphs.subset([4]),
                               config.model_copy(update={"features": 16}), checkpoint_dir=folder)


def test_rattled_vectors_are_those_of_the_displaced_crystal() -> None:
    cell = cubic_perovskite("Sr", "Ti", "O", 3.9)
    edges, vectors = structure_edges(cell, 3.0)  # neighbours at 1.95 and 2.76, next at 3.9
    gen = torch.Generator().manual_seed(4)
    got = rattled_vectors(torch.as_tensor(vectors), torch.as_tensor(edges), len(cell), 0.03, gen)
    shift = 0.03 * torch.randn(len(cell), 3, generator=torch.Generator().manual_seed(4))
    moved = Structure(cell.lattice, cell.species, cell.cart_coords + shift.double().numpy(),
                      coords_are_cartesian=True)
    edges2, vectors2 = structure_edges(moved, 3.0)

    def rows(e: np.ndarray, v: np.ndarray) -> np.ndarray:
        table = np.column_stack([e.T, np.round(v, 1), v])
        return table[np.lexsort(table[:, 4::-1].T)][:, [0, 1, 5, 6, 7]]

    np.testing.assert_allclose(rows(edges, got.numpy()), rows(edges2, vectors2), atol=1e-6)
    assert not np.allclose(got.numpy(), vectors)


def test_rattled_training_resumes_checkpoints_written_before_the_setting(tmp_path: object
                                                                         ) -> None:
    from pathlib import Path

    cells = _cells()[:5]
    y = np.array([[-3.5, 1.8], [-3.3, 1.6], [-3.6, 3.2], [-2.9, 0.0], [-1.2, 0.0]])
    graphs = build_graphs(cells, 5.0, y)
    config = CrystalTrainingConfig(features=8, n_layers=1, n_rbf=4, cutoff=5.0, members=1,
                                   epochs=5, warmup_epochs=1, batch_size=2)
    folder = Path(str(tmp_path)) / "members"
    first = train_crystal_ensemble(graphs.subset(range(4)), graphs.subset([4]), config,
                                   checkpoint_dir=folder)
    state = torch.load(folder / "member-0.pt", weights_only=True)
    del state["config"]["rattle"]  # as written before the setting existed
    torch.save(state, folder / "member-0.pt")
    again = train_crystal_ensemble(graphs.subset(range(4)), graphs.subset([4]), config,
                                   checkpoint_dir=folder)
    np.testing.assert_array_equal(first.predict_graphs(graphs)[0], again.predict_graphs(graphs)[0])
    with pytest.raises(ValueError, match="another recipe"):
        train_crystal_ensemble(graphs.subset(range(4)), graphs.subset([4]),
                               config.model_copy(update={"rattle": 0.03}), checkpoint_dir=folder)
    rattled = train_crystal_ensemble(graphs.subset(range(4)), graphs.subset([4]),
                                     config.model_copy(update={"rattle": 0.03}))
    assert not np.allclose(rattled.predict_graphs(graphs)[0], first.predict_graphs(graphs)[0])
    state["config"]["mystery"] = 1  # a setting this version does not know
    torch.save(state, folder / "member-0.pt")
    with pytest.raises(ValueError, match="another recipe"):
        train_crystal_ensemble(graphs.subset(range(4)), graphs.subset([4]), config,
                               checkpoint_dir=folder)


def test_rattled_training_interrupted_and_resumed_equals_an_uninterrupted_one(
        tmp_path: object) -> None:
    from pathlib import Path

    cells = _cells()[:5]
    y = np.array([[-3.5, 1.8], [-3.3, 1.6], [-3.6, 3.2], [-2.9, 0.0], [-1.2, 0.0]])
    graphs = build_graphs(cells, 5.0, y)
    config = CrystalTrainingConfig(features=8, n_layers=1, n_rbf=4, cutoff=5.0, members=1,
                                   epochs=10, warmup_epochs=1, batch_size=2, rattle=0.03)
    train, val = graphs.subset(range(4)), graphs.subset([4])
    whole = train_crystal_ensemble(train, val, config)
    folder = Path(str(tmp_path)) / "members"
    done = [0]

    def stop_after_six(n: int) -> None:
        done[0] += n
        if done[0] >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_crystal_ensemble(train, val, config, stop_after_six, checkpoint_dir=folder)
    assert torch.load(folder / "member-0.pt", weights_only=True)["epoch"] == 5
    resumed = train_crystal_ensemble(train, val, config, checkpoint_dir=folder)
    np.testing.assert_array_equal(whole.predict_graphs(graphs)[0],
                                  resumed.predict_graphs(graphs)[0])
